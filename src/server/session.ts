// Session tokens (HMAC-signed, stateless, valid on every replica sharing the secret) and the
// /api/session routes that issue and read them.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { User } from './chat/protocol';
import { HttpError } from './errors';
import { KeyedRateLimiter } from './ratelimit';

export const SESSION_COOKIE = 'chatter_session';
const TOKEN_VERSION = 'v1';
// Far above any token we issue (names are 32 code points); refusing early bounds the work of a 100 KB token.
const MAX_TOKEN_LENGTH = 1024;
const MAX_NAME_LENGTH = 32;

export interface Session {
  user: User;
  expiresAt: number;
}

export interface Sessions {
  issue(user: User, now?: number): { token: string; session: Session };
  verify(token: string | undefined, now?: number): Session | null;
  readonly ttlMs: number;
}

export function createSessions(secret: string, ttlMs: number): Sessions {
  const sign = (body: string) => createHmac('sha256', secret).update(body).digest();

  return {
    ttlMs,
    issue(user, now = Date.now()) {
      const session = { user: { id: user.id, name: user.name }, expiresAt: now + ttlMs };
      const payload = Buffer.from(JSON.stringify({ sub: user.id, name: user.name, exp: session.expiresAt })).toString(
        'base64url',
      );
      const body = `${TOKEN_VERSION}.${payload}`;
      return { token: `${body}.${sign(body).toString('base64url')}`, session };
    },

    verify(token, now = Date.now()) {
      if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return null;
      const [version, payload, signature, extra] = token.split('.');
      if (version !== TOKEN_VERSION || !payload || !signature || extra !== undefined) return null;
      const expected = sign(`${version}.${payload}`);
      const given = Buffer.from(signature, 'base64url');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;

      let claims: unknown;
      try {
        claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
      } catch {
        return null;
      }
      if (typeof claims !== 'object' || claims === null) return null;
      const { sub, name, exp } = claims as Record<string, unknown>;
      if (typeof sub !== 'string' || typeof name !== 'string' || typeof exp !== 'number' || exp <= now) return null;
      return { user: { id: sub, name }, expiresAt: exp };
    },
  };
}

export function newUserId(): string {
  return randomBytes(12).toString('base64url');
}

/**
 * Trims and NFC-normalises a display name, or returns null when it is not 1–32 code points of
 * visible text. Control, format (bidi overrides, zero-width), surrogate and line-separator
 * characters are refused; the zero-width joiner alone is allowed, inside emoji sequences.
 */
export function normaliseName(raw: unknown): string | null {
  // Bound the work before normalising: 32 code points are at most 64 UTF-16 units, plus padding.
  if (typeof raw !== 'string' || raw.length > 256) return null;
  if (!raw.isWellFormed()) return null;
  const name = raw.normalize('NFC').trim();
  const length = [...name].length;
  if (length < 1 || length > MAX_NAME_LENGTH) return null;
  if (/[\p{Cc}\p{Cs}\p{Zl}\p{Zp}]|(?!\u200d)\p{Cf}/u.test(name)) return null;
  if (!/[^\s\u200d]/u.test(name)) return null;
  return name;
}

/** The token a request carries: cookie first, then Bearer, then (for WebSocket clients) ?token=. */
export function tokenOf(request: FastifyRequest, allowQuery: boolean): string | undefined {
  const fromCookie = readCookie(request.headers.cookie, SESSION_COOKIE);
  if (fromCookie) return fromCookie;
  const authorization = request.headers.authorization;
  if (authorization?.startsWith('Bearer ')) return authorization.slice('Bearer '.length).trim();
  if (allowQuery) {
    const query = request.query as Record<string, unknown> | undefined;
    if (typeof query?.token === 'string') return query.token;
  }
  return undefined;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sessionCookie(token: string, ttlMs: number, secure: boolean): string {
  const attributes = [
    `${SESSION_COOKIE}=${token}`,
    'HttpOnly',
    'SameSite=Lax',
    'Path=/',
    `Max-Age=${Math.floor(ttlMs / 1000)}`,
  ];
  if (secure) attributes.push('Secure');
  return attributes.join('; ');
}

export async function sessionRoutes(
  app: FastifyInstance,
  { sessions, sessionsPerMinute }: { sessions: Sessions; sessionsPerMinute: number },
) {
  // Per client IP: request.ip is the forwarded address when the proxy is trusted (TRUST_PROXY).
  const newSessions = new KeyedRateLimiter(sessionsPerMinute, sessionsPerMinute / 60);

  app.post('/api/session', { bodyLimit: 4096 }, async (request, reply) => {
    const waitMs = newSessions.take(request.ip, Date.now());
    if (waitMs > 0) {
      reply.header('retry-after', Math.ceil(waitMs / 1000));
      return reply.code(429).send({
        error: { code: 'rate_limited', message: 'too many new sessions from this address; try again later', retryAfterMs: waitMs },
      });
    }
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new HttpError(400, 'bad_request', 'body must be a JSON object like {"name":"alice"}');
    }
    const name = normaliseName((body as Record<string, unknown>).name);
    if (name === null) {
      throw new HttpError(400, 'invalid_name', 'name must be 1-32 visible characters, without control characters');
    }
    // Someone renaming keeps their identity, so their earlier messages stay theirs.
    const current = sessions.verify(tokenOf(request, false));
    const user = { id: current?.user.id ?? newUserId(), name };
    const { token } = sessions.issue(user);
    reply.header('set-cookie', sessionCookie(token, sessions.ttlMs, request.protocol === 'https'));
    return { user, token };
  });

  app.get('/api/session', async (request) => {
    const session = sessions.verify(tokenOf(request, false));
    if (!session) throw new HttpError(401, 'unauthorized', 'no valid session; POST /api/session to start one');
    return { user: session.user };
  });

  // Signing out only forgets the cookie: tokens are stateless and expire on their own.
  app.delete('/api/session', async (request, reply) => {
    reply.header('set-cookie', sessionCookie('', 0, request.protocol === 'https'));
    return reply.code(204).send();
  });
}
