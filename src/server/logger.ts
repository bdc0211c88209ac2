// pino for operators: JSON, one event a line, and nothing secret. Tokens travel in cookies,
// Authorization headers and the /ws?token= query; none of them is ever written.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config';

interface LoggedRequest {
  id?: string;
  method?: string;
  url?: string;
  ip?: string;
  headers?: Record<string, unknown>;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One short line per event for a person at a terminal; machines (any non-TTY) get the JSON. */
function terminalStream(out: NodeJS.WriteStream): pino.DestinationStream {
  return {
    write(line: string) {
      const { level, time, msg, pid: _pid, hostname: _hostname, ...fields } = JSON.parse(line) as Record<string, unknown>;
      const extra = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
      out.write(`${new Date(Number(time)).toISOString().slice(11, 23)} ${LEVEL_NAMES[Number(level)] ?? level} ${msg ?? ''}${extra}\n`);
    },
  };
}

export function createLogger(
  level: LogLevel,
  destination: pino.DestinationStream | undefined = process.stdout.isTTY ? terminalStream(process.stdout) : undefined,
): Logger {
  return pino(
    {
      level,
      serializers: {
        req: (req: LoggedRequest) => ({
          id: req.id,
          method: req.method,
          url: redactUrl(req.url),
          remoteAddress: req.ip,
          userAgent: req.headers?.['user-agent'],
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
        err: pino.stdSerializers.err,
      },
      // Belt and braces for anyone logging a raw request or reply later.
      redact: {
        paths: ['headers.cookie', 'headers.authorization', 'req.headers.cookie', 'req.headers.authorization', 'token'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

export function redactUrl(url: string | undefined): string | undefined {
  return url?.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]');
}
