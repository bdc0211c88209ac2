// Runs the built dist/server.js as a child process, the way users and replicas run it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { TEST_SECRET } from './app';

export const SERVER_JS = fileURLToPath(new URL('../../dist/server.js', import.meta.url));

/** A port that was free a moment ago (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  wsUrl: string;
  /** Parsed JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  stderr: string;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export interface StartOptions {
  env?: Record<string, string>;
  host?: string;
  port?: number;
  /** How long start-up may take before the test fails (a bound, not an assertion). */
  readyWithinMs?: number;
  /** Another copy of the artifact (the image replay runs one outside the repository). */
  script?: string;
  cwd?: string;
}

export async function startServer(options: StartOptions = {}): Promise<ServerProcess> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const child = spawn(process.execPath, [options.script ?? SERVER_JS], {
    cwd: options.cwd,
    env: {
      PATH: process.env.PATH,
      SESSION_SECRET: TEST_SECRET,
      LOG_LEVEL: 'info',
      // Every test client signs in from 127.0.0.1; the security suite tests the default limit.
      SESSIONS_PER_MINUTE: '100000',
      ...options.env,
      HOST: host,
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server: ServerProcess = {
    child,
    url: `http://${host}:${port}`,
    wsUrl: `ws://${host}:${port}/ws`,
    logs: [],
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return server.exited;
    },
  };
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      try {
        server.logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        server.logs.push({ msg: line });
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (server.stderr += chunk));

  const deadline = Date.now() + (options.readyWithinMs ?? 15_000);
  while (!server.logs.some((line) => line.msg === 'chatter is ready')) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${server.stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready in time: ${server.stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return server;
}

/** Runs dist/server.js to completion with an env that should make it refuse to start. */
export function runToExit(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SERVER_JS], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr });
    });
  });
}

export async function signIn(url: string, name: string): Promise<{ token: string; user: { id: string; name: string } }> {
  const response = await fetch(`${url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (!response.ok) throw new Error(`sign-in failed: ${response.status}`);
  return (await response.json()) as { token: string; user: { id: string; name: string } };
}
