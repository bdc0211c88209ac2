// Frames bound for one socket within one turn of the event loop leave in one write system call.
// The TCP socket is corked at its first frame and uncorked in the turn's check phase
// (setImmediate), after every I/O callback of that poll: a message's ack and its delivery to the
// sender, which Redis answers on two connections at once, leave together, and so do messages
// that arrive together from Redis. One message per turn costs what it did before. Under load,
// each socket gets a turn's frames in a single writev instead of one system call per message,
// and that call was almost all of a delivery's cost.
import type { Socket } from 'node:net';

const corked = new Set<Socket>();

function uncorkAll(): void {
  for (const socket of corked) socket.uncork();
  corked.clear();
}

/** Holds `socket`'s writes until the current turn ends. */
export function coalesceWrites(socket: Socket): void {
  if (corked.has(socket)) return;
  socket.cork();
  corked.add(socket);
  if (corked.size === 1) setImmediate(uncorkAll);
}
