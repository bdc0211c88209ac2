import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, redactUrl } from '../../src/server/logger';

test('tokens in URLs, cookies and Authorization headers never reach the log', () => {
  const lines: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
  logger.info(
    {
      req: { id: 'r1', method: 'GET', url: '/ws?room=a&token=v1.secret.sig', ip: '127.0.0.1', headers: { cookie: 'chatter_session=v1.secret.sig', authorization: 'Bearer v1.secret.sig' } },
      headers: { cookie: 'chatter_session=v1.secret.sig', authorization: 'Bearer v1.secret.sig' },
    },
    'incoming request',
  );
  assert.equal(lines.length, 1);
  assert.doesNotMatch(lines[0]!, /secret/);
  const entry = JSON.parse(lines[0]!);
  assert.equal(entry.req.url, '/ws?room=a&token=[redacted]');
  assert.equal(entry.headers.cookie, '[redacted]');
});

test('redactUrl leaves other parameters alone', () => {
  assert.equal(redactUrl('/ws?token=abc'), '/ws?token=[redacted]');
  assert.equal(redactUrl('/ws?a=1&TOKEN=abc#x'), '/ws?a=1&TOKEN=[redacted]#x');
  assert.equal(redactUrl('/api/rooms'), '/api/rooms');
  assert.equal(redactUrl(undefined), undefined);
});
