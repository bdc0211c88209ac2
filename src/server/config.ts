// Environment → a typed, frozen Config, or one ConfigError that names the variable.
import { isIP } from 'node:net';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  readonly port: number;
  readonly host: string;
  /** Unset: embedded mode (in-memory store). */
  readonly redisUrl: string | undefined;
  /** Undefined in embedded mode when none was given: main makes a random one. */
  readonly sessionSecret: string | undefined;
  readonly sessionTtlMs: number;
  readonly allowedOrigins: readonly string[];
  /** Proxy addresses, CIDRs or proxy-addr names (loopback, linklocal, uniquelocal); empty trusts none. */
  readonly trustProxy: readonly string[];
  readonly logLevel: LogLevel;
  readonly maxMessageLength: number;
  readonly historyLimit: number;
  /** New sessions (POST /api/session) per client IP per minute. */
  readonly sessionsPerMinute: number;
  /** Open sockets on one replica per user, and per client IP. */
  readonly maxSocketsPerUser: number;
  readonly maxSocketsPerIp: number;
  /** Embedded mode: rooms with history held in memory. */
  readonly maxRooms: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const DURATION_UNITS_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const MIN_SECRET_LENGTH = 32;
// A message of 4000 code points of 4 bytes each still fits a 16 KiB frame.
const MAX_MESSAGE_LENGTH_CAP = 4000;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === '' ? undefined : value;
  };

  const redisUrl = read('REDIS_URL');
  if (redisUrl !== undefined && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL (got "${redisUrl}")`);
  }

  const sessionSecret = read('SESSION_SECRET');
  if (sessionSecret !== undefined && sessionSecret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError('SESSION_SECRET', `must be at least ${MIN_SECRET_LENGTH} characters long`);
  }
  if (sessionSecret === undefined && redisUrl !== undefined) {
    throw new ConfigError('SESSION_SECRET', 'is required when REDIS_URL is set (every replica must share it)');
  }

  const logLevel = read('LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }

  return Object.freeze({
    port: integer('PORT', read('PORT'), 3000, 1, 65535),
    host: read('HOST') ?? '0.0.0.0',
    redisUrl,
    sessionSecret,
    sessionTtlMs: duration('SESSION_TTL', read('SESSION_TTL') ?? '30d'),
    allowedOrigins: Object.freeze(origins(read('ALLOWED_ORIGINS'))),
    trustProxy: Object.freeze(proxies(read('TRUST_PROXY'))),
    logLevel: logLevel as LogLevel,
    maxMessageLength: integer('MAX_MESSAGE_LENGTH', read('MAX_MESSAGE_LENGTH'), 2000, 1, MAX_MESSAGE_LENGTH_CAP),
    historyLimit: integer('HISTORY_LIMIT', read('HISTORY_LIMIT'), 10_000, 50, 10_000_000),
    sessionsPerMinute: integer('SESSIONS_PER_MINUTE', read('SESSIONS_PER_MINUTE'), 30, 1, 1_000_000),
    maxSocketsPerUser: integer('MAX_SOCKETS_PER_USER', read('MAX_SOCKETS_PER_USER'), 20, 1, 1_000_000),
    maxSocketsPerIp: integer('MAX_SOCKETS_PER_IP', read('MAX_SOCKETS_PER_IP'), 500, 1, 1_000_000),
    maxRooms: integer('MAX_ROOMS', read('MAX_ROOMS'), 10_000, 1, 10_000_000),
  });
}

function integer(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const parsed = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max} (got "${value}")`);
  }
  return parsed;
}

/** `90s`, `15m`, `12h`, `30d` → milliseconds. */
export function duration(name: string, value: string): number {
  const match = /^(\d{1,9})([smhd])$/.exec(value);
  const ms = match ? Number(match[1]) * DURATION_UNITS_MS[match[2] as keyof typeof DURATION_UNITS_MS] : 0;
  if (ms <= 0) {
    throw new ConfigError(name, `must be a positive duration such as 90s, 15m, 12h or 30d (got "${value}")`);
  }
  return ms;
}

function origins(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value.split(',').map((entry) => {
    const origin = entry.trim();
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    // An origin is exactly scheme://host[:port]: no path, no trailing slash, no credentials.
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError('ALLOWED_ORIGINS', `must be comma-separated origins like https://chat.example.com (got "${origin}")`);
    }
    return origin;
  });
}

function proxies(value: string | undefined): string[] {
  if (value === undefined) return ['loopback', 'uniquelocal'];
  if (value === 'none' || value === 'false') return [];
  return value.split(',').map((entry) => {
    const proxy = entry.trim();
    const [address, bits, extra] = proxy.split('/');
    const version = isIP(address ?? '');
    const bitsOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (version === 6 ? 128 : 32));
    if (!PROXY_NAMES.has(proxy) && (version === 0 || !bitsOk || extra !== undefined)) {
      throw new ConfigError(
        'TRUST_PROXY',
        `must be "none" or comma-separated addresses, CIDRs, loopback, linklocal or uniquelocal (got "${proxy}")`,
      );
    }
    return proxy;
  });
}
