// The peer: what people would pick instead of Chatter. A Socket.IO 4 server with the official
// Redis adapter, written as its documentation recommends for several servers: WebSocket transport
// only (so no sticky sessions are needed), one pub and one sub client for the adapter. It offers
// the same room join and broadcast as Chatter; it stores nothing and has no resume.
//   PORT, HOST, REDIS_URL from the environment, as Chatter.
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const pubClient = createClient({ url: process.env.REDIS_URL, RESP: 2 });
const subClient = pubClient.duplicate();
await Promise.all([pubClient.connect(), subClient.connect()]);

const httpServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}'));
const io = new Server(httpServer, {
  transports: ['websocket'],
  adapter: createAdapter(pubClient, subClient),
  serveClient: false,
  perMessageDeflate: false,
});

let nextId = 0;
io.on('connection', (socket) => {
  const name = String(socket.handshake.auth?.name ?? 'anonymous').slice(0, 32);
  socket.on('join', (room, ack) => {
    if (typeof room !== 'string') return;
    socket.join(room);
    if (typeof ack === 'function') ack({ room });
  });
  socket.on('leave', (room) => typeof room === 'string' && socket.leave(room));
  socket.on('send', (frame, ack) => {
    if (!frame || typeof frame.room !== 'string' || !socket.rooms.has(frame.room)) return;
    const id = `${Date.now()}-${nextId++}`;
    io.to(frame.room).emit('message', { room: frame.room, id, ts: Date.now(), user: { id: socket.id, name }, text: String(frame.text), clientId: frame.clientId });
    if (typeof ack === 'function') ack({ id });
  });
});

httpServer.listen(port, host, () => process.stdout.write(JSON.stringify({ msg: 'peer is ready', pid: process.pid }) + '\n'));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    io.close();
    process.exit(0);
  });
}
