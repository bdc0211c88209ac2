// Frames built by wire.ts, read back by ws's own Receiver (what every client library does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import { textFrame } from '../../../src/server/chat/wire';

// ws exports its frame parser, though @types/ws does not declare it.
type Parser = EventEmitter & { write(chunk: Buffer): void };
const { Receiver } = createRequire(import.meta.url)('ws') as { Receiver: new (options: { isServer: boolean }) => Parser };

function decode(bytes: Buffer): string[] {
  const texts: string[] = [];
  const receiver = new Receiver({ isServer: false });
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    assert.equal(isBinary, false);
    texts.push(data.toString());
  });
  receiver.on('error', (err: Error) => assert.fail(err));
  receiver.write(bytes);
  return texts;
}

test('text frames of every length class decode to the same text', () => {
  // 7-bit, 16-bit and 64-bit lengths, at their edges, with multi-byte characters.
  for (const length of [0, 1, 125, 126, 127, 65_535, 65_536, 300_000]) {
    const text = 'é'.repeat(Math.floor(length / 2)) + 'x'.repeat(length % 2);
    assert.equal(Buffer.byteLength(text), length);
    assert.deepEqual(decode(textFrame(text)), [text], `${length} bytes`);
  }
  const twoInOne = Buffer.concat([textFrame('{"a":1}'), textFrame('😀')]);
  assert.deepEqual(decode(twoInOne), ['{"a":1}', '😀'], 'frames back to back, as a coalesced write sends them');
});
