// Reads a Dockerfile into stages and instructions, so a test can replay what `docker build` does.
import { readFileSync } from 'node:fs';

export interface Instruction {
  op: string;
  /** The text after the keyword, continuation lines joined. */
  args: string;
  /** Leading `--flag=value` options (COPY --from=build, …). */
  flags: Record<string, string>;
  /** The rest, split on whitespace, or the array of an exec-form JSON instruction. */
  words: string[];
}

export interface Stage {
  base: string;
  name: string | undefined;
  instructions: Instruction[];
}

export function readDockerfile(path: string): Stage[] {
  const text = readFileSync(path, 'utf8').replace(/\\\n/g, ' ');
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = parse(op.toUpperCase(), rest.trim());
    if (instruction.op === 'FROM') {
      const [base = '', as, name] = instruction.words;
      stages.push({ base, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${path}: ${op} before FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

function parse(op: string, args: string): Instruction {
  const flags: Record<string, string> = {};
  let rest = args;
  for (let match; (match = /^--([a-z-]+)(?:=(\S+))?\s*/.exec(rest)); rest = rest.slice(match[0].length)) {
    flags[match[1]!] = match[2] ?? 'true';
  }
  // Exec form (the JSON array) is kept whole; HEALTHCHECK's options come before its CMD.
  const exec = /^(CMD\s+)?(\[.*\])$/.exec(rest);
  const words = exec ? (JSON.parse(exec[2]!) as string[]) : rest.split(/\s+/).filter(Boolean);
  return { op, args, flags, words };
}

/** ENV lines of a stage as one object (`ENV A=1 B=2`). */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { op, words } of stage.instructions) {
    if (op !== 'ENV') continue;
    for (const word of words) {
      const [key, ...value] = word.split('=');
      env[key!] = value.join('=');
    }
  }
  return env;
}

export const lastOf = (stage: Stage, op: string): Instruction | undefined =>
  stage.instructions.filter((instruction) => instruction.op === op).at(-1);
