import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareIds, parseClientFrame } from '../../../src/server/chat/protocol';

const parse = (value: unknown) => parseClientFrame(typeof value === 'string' ? value : JSON.stringify(value), 10);

test('ids order numerically by time, then sequence', () => {
  assert.equal(compareIds('9-0', '10-0'), -1);
  assert.equal(compareIds('10-2', '10-10'), -1);
  assert.equal(compareIds('10-10', '10-10'), 0);
  assert.equal(compareIds('11-0', '10-99'), 1);
});

test('valid frames parse to their typed form', () => {
  assert.deepEqual(parse({ type: 'join', room: 'general' }), { ok: true, frame: { type: 'join', room: 'general' } });
  assert.deepEqual(parse({ type: 'join', room: 'a', since: '1-0' }), { ok: true, frame: { type: 'join', room: 'a', since: '1-0' } });
  assert.deepEqual(parse({ type: 'leave', room: 'a' }), { ok: true, frame: { type: 'leave', room: 'a' } });
  assert.deepEqual(parse({ type: 'typing', room: 'a' }), { ok: true, frame: { type: 'typing', room: 'a' } });
  assert.deepEqual(parse({ type: 'send', room: 'a', text: ' hi ', clientId: 'k-_9' }), {
    ok: true,
    frame: { type: 'send', room: 'a', text: ' hi ', clientId: 'k-_9' },
  });
  assert.deepEqual(parse({ type: 'history', room: 'a' }), { ok: true, frame: { type: 'history', room: 'a', limit: 50 } });
  assert.deepEqual(parse({ type: 'history', room: 'a', before: '5-1', limit: 100 }), {
    ok: true,
    frame: { type: 'history', room: 'a', before: '5-1', limit: 100 },
  });
});

test('the text limit counts code points', () => {
  assert.equal(parse({ type: 'send', room: 'a', text: '😀'.repeat(10), clientId: 'c' }).ok, true);
  const tooLong = parse({ type: 'send', room: 'a', text: '😀'.repeat(11), clientId: 'c' });
  assert.equal(!tooLong.ok && tooLong.code, 'too_long');
});

test('every malformed frame gets a named error code and a ref', () => {
  const cases: Array<[unknown, string]> = [
    ['{not json', 'bad_request'],
    ['null', 'bad_request'],
    ['[1,2]', 'bad_request'],
    ['"join"', 'bad_request'],
    ['42', 'bad_request'],
    [{}, 'bad_request'],
    [{ type: 'shout', room: 'a' }, 'bad_request'],
    [{ type: 42 }, 'bad_request'],
    [{ type: 'join' }, 'invalid_room'],
    [{ type: 'join', room: 'General' }, 'invalid_room'],
    [{ type: 'join', room: '-a' }, 'invalid_room'],
    [{ type: 'join', room: 'a'.repeat(33) }, 'invalid_room'],
    [{ type: 'join', room: ['a'] }, 'invalid_room'],
    [{ type: 'join', room: 'a', since: 5 }, 'bad_request'],
    [{ type: 'join', room: 'a', since: 'abc' }, 'bad_request'],
    [{ type: 'send', room: 'a', text: 'hi' }, 'bad_request'],
    [{ type: 'send', room: 'a', text: 'hi', clientId: '' }, 'bad_request'],
    [{ type: 'send', room: 'a', text: 'hi', clientId: 'a'.repeat(65) }, 'bad_request'],
    [{ type: 'send', room: 'a', text: 'hi', clientId: 'no spaces' }, 'bad_request'],
    [{ type: 'send', room: 'a', text: 42, clientId: 'c' }, 'bad_request'],
    [{ type: 'send', room: 'a', text: ' \n\t ', clientId: 'c' }, 'bad_request'],
    [{ type: 'send', room: 'a', text: '\ud800', clientId: 'c' }, 'bad_request'],
    [{ type: 'history', room: 'a', limit: 0 }, 'bad_request'],
    [{ type: 'history', room: 'a', limit: 101 }, 'bad_request'],
    [{ type: 'history', room: 'a', limit: 1.5 }, 'bad_request'],
    [{ type: 'history', room: 'a', limit: '5' }, 'bad_request'],
    [{ type: 'history', room: 'a', before: {} }, 'bad_request'],
  ];
  for (const [input, code] of cases) {
    const result = parse(input);
    assert.equal(result.ok, false, JSON.stringify(input));
    if (!result.ok) {
      assert.equal(result.code, code, JSON.stringify(input));
      assert.equal(typeof result.ref.type, 'string');
    }
  }
});

test('refs echo only short, well-formed strings', () => {
  const result = parse({ type: 'x'.repeat(1000), room: { nested: true }, clientId: '\ud800' });
  assert.deepEqual(!result.ok && result.ref, { type: 'unknown' });
  const named = parse({ type: 'send', room: 'a', clientId: 'bad id', text: 'x' });
  assert.deepEqual(!named.ok && named.ref, { type: 'send', room: 'a', clientId: 'bad id' });
});

test('prototype keys are plain data', () => {
  const result = parse('{"type":"join","room":"a","__proto__":{"since":"1-0"},"constructor":{"prototype":{}}}');
  assert.deepEqual(result, { ok: true, frame: { type: 'join', room: 'a' } });
  assert.equal(({} as Record<string, unknown>).since, undefined);
});
