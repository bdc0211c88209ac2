// The headers every response carries, whatever it is: the page, an asset, the API, an error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build } from '../helpers/app';

test('every response carries a strict CSP, nosniff, no-referrer and frame denial', async (t) => {
  const server = await build(t);
  const page = await fetch(server.url);
  const script = /<script[^>]+src="([^"]+)"/.exec(await page.text())![1]!;
  const responses = {
    page,
    asset: await fetch(new URL(script, server.url)),
    api: await fetch(`${server.url}/api/rooms`),
    'API error': await fetch(`${server.url}/api/session`),
    'not found': await fetch(`${server.url}/nope`),
    'refused upgrade': await fetch(`${server.url}/ws`),
  };
  for (const [what, response] of Object.entries(responses)) {
    const policy = response.headers.get('content-security-policy') ?? '';
    const directives = new Map(policy.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name, values.join(' ')]));
    assert.equal(directives.get('default-src'), "'self'", `${what}: default-src`);
    assert.equal(directives.get('script-src'), "'self'", `${what}: no inline or foreign script`);
    assert.equal(directives.get('connect-src'), "'self'", `${what}: connect-src`);
    assert.equal(directives.get('frame-ancestors'), "'none'", `${what}: frame-ancestors`);
    assert.equal(directives.get('object-src'), "'none'", `${what}: object-src`);
    assert.ok(!policy.includes('unsafe-'), `${what}: nothing unsafe`);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff', what);
    assert.equal(response.headers.get('referrer-policy'), 'no-referrer', what);
    assert.equal(response.headers.get('x-frame-options'), 'DENY', what);
    assert.equal(response.headers.get('access-control-allow-origin'), null, `${what}: no CORS`);
  }
});
