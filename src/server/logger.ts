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

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
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
