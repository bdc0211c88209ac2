// The page (the built client from dist/public), and the headers every response carries.
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

// No inline script or style anywhere in the client, so the policy can be this strict.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

/** On every response the app sends (the API and errors too): call on the root instance. */
export function addSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply) => {
    reply.headers(SECURITY_HEADERS);
  });
}

export async function web(app: FastifyInstance, { publicDir }: { publicDir: string }) {
  await app.register(fastifyStatic, {
    root: publicDir,
    prefix: '/',
    // Files are listed once at start: the build is immutable while the process runs.
    wildcard: false,
    // build.mjs writes .br and .gz beside each asset.
    preCompressed: true,
    cacheControl: false,
    setHeaders(reply, filePath) {
      // Assets carry a content hash in their names; index.html must be revalidated to pick up a new build.
      const immutable = /[\\/]assets[\\/]/.test(filePath);
      reply.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
}
