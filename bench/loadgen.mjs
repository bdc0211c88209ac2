// The load generator: one process, pinned to its own core by bench/run.mjs, driven over IPC.
// It speaks Chatter's protocol and Socket.IO's wire protocol (Engine.IO 4) directly over `ws`:
// the same bytes socket.io-client would send, without its cost, so that the generator is never
// what saturates. Deliveries are recognised without JSON.parse: the text of every message is
// "<seq>|<sent at, ms>|padding", found by a byte search.
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';

const TEXT_MARKER = Buffer.from('"text":"');
const MESSAGE_PREFIX = {
  chatter: Buffer.from('{"type":"message"'),
  peer: Buffer.from('42["message"'),
};
const ID_MARKER = Buffer.from('"id":"');
/** Presence changes: counted, never parsed (a storm brings a million of them). */
const PRESENCE_PREFIX = Buffer.from('{"type":"presence"');
/**
 * A `joined` frame, read without parsing its user list: in a storm each of a thousand frames
 * lists a thousand users, and parsing them all would make the generator what saturates.
 */
const JOINED_PREFIX = Buffer.from('{"type":"joined","room":"');
const USERS_MARKER = Buffer.from(',"users":[');
const MESSAGES_MARKER = Buffer.from('"messages":');
let presenceFrames = 0;
const PADDING = 'x'.repeat(48);
/** However long deliveries keep coming after a step, it ends this long after its sends did. */
const DRAIN_LIMIT_MS = 30_000;
/** Sockets the server closed (slow reader, flooding, restart) since the step began. */
let serverClosed = 0;

const now = () => performance.now();

/** Per-step bookkeeping, shared by every client. */
class Tally {
  constructor(seqStart) {
    this.seqStart = seqStart;
    this.sent = 0;
    this.acked = 0;
    this.refused = 0;
    this.expected = 0;
    this.unique = 0;
    this.duplicates = 0;
    this.lastAt = 0;
    this.latencies = new Float64Array(1 << 20);
    this.count = 0;
  }

  latency(ms) {
    if (this.count === this.latencies.length) {
      const grown = new Float64Array(this.latencies.length * 2);
      grown.set(this.latencies);
      this.latencies = grown;
    }
    this.latencies[this.count++] = ms;
  }

  /** `sendSeconds` from `start`: throughput counts until the last delivery, if that came later. */
  summary(start, sendSeconds) {
    const seconds = Math.max(sendSeconds, (this.lastAt - start) / 1000);
    const sorted = this.latencies.subarray(0, this.count).sort();
    const at = (q) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
    return {
      sent: this.sent,
      acked: this.acked,
      refused: this.refused,
      expected: this.expected,
      delivered: this.unique,
      lost: Math.max(0, this.expected - this.unique),
      duplicates: this.duplicates,
      deliveriesPerSecond: this.unique / seconds,
      p50: at(0.5),
      p99: at(0.99),
      p999: at(0.999),
    };
  }
}

let tally = new Tally(0);
let nextSeq = 0;
/** Messages the server refused: owed to nobody. */
const refusedSeqs = new Set();
/** Members per room, to know how many deliveries each message owes. */
const roomSizes = new Map();

/** Reads "<seq>|<ms>|" starting at `start` in `data`; returns [seq, sentAt] or null. */
function readStamp(data, start) {
  let seq = 0;
  let i = start;
  for (let c = data[i]; c !== 0x7c; c = data[++i]) {
    if (c < 0x30 || c > 0x39) return null;
    seq = seq * 10 + (c - 0x30);
  }
  let sentAt = 0;
  let scale = 0;
  for (let c = data[++i]; c !== 0x7c; c = data[++i]) {
    if (c === 0x2e) scale = 1;
    else if (c >= 0x30 && c <= 0x39) {
      if (scale) sentAt += (c - 0x30) / (scale *= 10);
      else sentAt = sentAt * 10 + (c - 0x30);
    } else return null;
  }
  return [seq, sentAt];
}

class Client {
  constructor(kind, url, name, token) {
    this.kind = kind;
    this.url = url;
    this.name = name;
    this.token = token;
    this.rooms = [];
    /** Sequence numbers received in the current step (duplicate detection). */
    this.seen = new Set();
    /** Every sequence number received, when a scenario checks for loss over reconnects. */
    this.all = null;
    this.lastId = new Map();
    this.replica = null;
    this.waiters = new Map();
    this.ackNo = 0;
    this.socket = null;
  }

  /** Opens the socket and completes the protocol's handshake. */
  open() {
    return new Promise((resolve, reject) => {
      const url =
        this.kind === 'chatter'
          ? `${this.url}/ws?token=${encodeURIComponent(this.token)}`
          : `${this.url}/socket.io/?EIO=4&transport=websocket`;
      const socket = new WebSocket(url, { perMessageDeflate: false });
      this.socket = socket;
      this.closing = false;
      const timer = setTimeout(() => reject(new Error(`${this.name}: no handshake in 20 s`)), 20_000);
      this.onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      socket.on('message', (data) => this.receive(data));
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.on('close', () => {
        if (this.socket !== socket) return; // an earlier socket of a client that reconnected
        if (!this.closing) serverClosed++;
        for (const waiter of this.waiters.values()) waiter(null);
        this.waiters.clear();
      });
    });
  }

  receive(data) {
    const prefix = MESSAGE_PREFIX[this.kind];
    if (data.length > prefix.length && data.compare(prefix, 0, prefix.length, 0, prefix.length) === 0) {
      this.delivery(data);
      return;
    }
    if (this.kind === 'chatter' && data.compare(PRESENCE_PREFIX, 0, PRESENCE_PREFIX.length, 0, PRESENCE_PREFIX.length) === 0) presenceFrames++;
    else if (this.kind === 'chatter' && data.compare(JOINED_PREFIX, 0, JOINED_PREFIX.length, 0, JOINED_PREFIX.length) === 0) this.chatterFrame(readJoined(data));
    else if (this.kind === 'chatter') this.chatterFrame(JSON.parse(data));
    else this.engineFrame(data.toString());
  }

  delivery(data) {
    const at = data.indexOf(TEXT_MARKER);
    const stamp = at === -1 ? null : readStamp(data, at + TEXT_MARKER.length);
    if (!stamp) return;
    const [seq, sentAt] = stamp;
    if (this.all) this.all.add(seq);
    if (this.all && this.kind === 'chatter') {
      const idAt = data.indexOf(ID_MARKER);
      const end = data.indexOf(0x22, idAt + ID_MARKER.length);
      this.lastId.set(this.rooms[0], data.toString('latin1', idAt + ID_MARKER.length, end));
    }
    if (seq < tally.seqStart) {
      tally.late++;
      return;
    }
    if (this.seen.has(seq)) {
      tally.duplicates++;
      return;
    }
    this.seen.add(seq);
    tally.unique++;
    tally.lastAt = now();
    tally.latency(tally.lastAt - sentAt);
  }

  chatterFrame(frame) {
    switch (frame.type) {
      case 'welcome':
        this.replica = frame.replica;
        this.onReady();
        return;
      case 'joined':
        // A resume's missed messages arrive here rather than as `message` frames.
        for (const message of frame.messages) {
          const [seq] = message.text.split('|');
          if (this.all && /^\d+$/.test(seq)) this.all.add(Number(seq));
          this.lastId.set(frame.room, message.id);
        }
        this.settle(`join:${frame.room}`, frame);
        return;
      case 'history':
        for (const message of frame.messages) {
          const [seq] = message.text.split('|');
          if (this.all && /^\d+$/.test(seq)) this.all.add(Number(seq));
        }
        this.settle(`history:${frame.room}`, frame);
        return;
      case 'ack':
        tally.acked++;
        return;
      case 'error':
        if (frame.ref?.type === 'send') {
          // Refused (rate_limited, unavailable): not stored, so nobody is owed it.
          tally.refused++;
          tally.expected -= roomSizes.get(frame.ref.room) ?? 0;
          refusedSeqs.add(Number(String(frame.ref.clientId).slice(1)));
        }
        if (frame.ref?.type === 'join') this.settle(`join:${frame.ref.room}`, null);
        return;
      default:
    }
  }

  engineFrame(text) {
    if (text === '2') {
      this.socket.send('3'); // Engine.IO ping → pong
    } else if (text.startsWith('0')) {
      this.socket.send(`40${JSON.stringify({ name: this.name })}`); // connect to namespace "/"
    } else if (text.startsWith('40')) {
      this.replica = this.url;
      this.onReady();
    } else if (text.startsWith('43')) {
      const bracket = text.indexOf('[');
      const id = Number(text.slice(2, bracket));
      const waiter = this.waiters.get(id);
      if (waiter) {
        this.waiters.delete(id);
        waiter(JSON.parse(text.slice(bracket))[0]);
      } else {
        tally.acked++;
      }
    }
  }

  settle(key, value) {
    const waiter = this.waiters.get(key);
    if (waiter) {
      this.waiters.delete(key);
      waiter(value);
    }
  }

  /**
   * Joins; with `since`, resumes. When the server cannot vouch for a resume (resumed: false) the
   * client pages back through history to `since`, as the real client does.
   */
  async join(room, since) {
    const joined = await this.joinOnce(room, since);
    if (this.kind !== 'chatter' || !since || !joined || joined.resumed) return joined;
    let before = joined.messages[0]?.id;
    for (let page = 0; page < 500 && before; page++) {
      const history = await new Promise((resolve) => {
        this.waiters.set(`history:${room}`, resolve);
        this.socket.send(JSON.stringify({ type: 'history', room, before, limit: 100 }));
      });
      if (!history || !history.hasMore || history.messages.some((m) => m.id === since)) break;
      before = history.messages[0]?.id;
    }
    return joined;
  }

  joinOnce(room, since) {
    return new Promise((resolve) => {
      if (this.kind === 'chatter') {
        this.waiters.set(`join:${room}`, resolve);
        this.socket.send(JSON.stringify(since ? { type: 'join', room, since } : { type: 'join', room }));
      } else {
        const id = ++this.ackNo;
        this.waiters.set(id, resolve);
        this.socket.send(`42${id}${JSON.stringify(['join', room])}`);
      }
    });
  }

  say(room) {
    const seq = nextSeq++;
    const text = `${seq}|${now().toFixed(3)}|${PADDING}`;
    const clientId = `c${seq}`;
    if (this.kind === 'chatter') {
      this.socket.send(`{"type":"send","room":"${room}","text":"${text}","clientId":"${clientId}"}`);
    } else {
      // With an ack id, as an app that wants to know the server took it would send it.
      this.socket.send(`42${++this.ackNo}["send",{"room":"${room}","text":"${text}","clientId":"${clientId}"}]`);
    }
    tally.sent++;
    tally.expected += roomSizes.get(room) ?? 0;
  }

  close() {
    this.closing = true;
    this.socket?.terminate();
  }
}

/** `{type, room, messages, resumed}` of a joined frame; its messages are parsed, its users skipped. */
function readJoined(data) {
  const roomEnd = data.indexOf(0x22, JOINED_PREFIX.length);
  const messagesAt = data.indexOf(MESSAGES_MARKER, roomEnd) + MESSAGES_MARKER.length;
  // Message texts are the generator's own "<seq>|<ms>|x…", so the marker cannot occur inside one.
  const usersAt = data.indexOf(USERS_MARKER, messagesAt);
  return {
    type: 'joined',
    room: data.toString('latin1', JOINED_PREFIX.length, roomEnd),
    messages: JSON.parse(data.toString('utf8', messagesAt, usersAt)),
    resumed: data.includes('"resumed":true}', data.length - 16),
  };
}

let clients = [];

async function inBatches(items, size, work) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

async function signIn(url, name) {
  const response = await fetch(`${url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (!response.ok) throw new Error(`sign-in failed: ${response.status}`);
  return (await response.json()).token;
}

/** Opens `count` clients spread over `urls`, each joining the rooms `roomsOf(i)` names. */
async function connect({ kind, urls, count, roomsOf, prefix }) {
  const made = [];
  const rooms = new Function('i', `return (${roomsOf})(i)`);
  await inBatches([...Array(count).keys()], 100, async (i) => {
    const url = urls[i % urls.length];
    const name = `${prefix}${i}`;
    const token = kind === 'chatter' ? await signIn(url, name) : null;
    const client = new Client(kind, url, name, token);
    await client.open();
    client.rooms = rooms(i);
    for (const room of client.rooms) {
      await client.join(room);
      roomSizes.set(room, (roomSizes.get(room) ?? 0) + 1);
    }
    made.push(client);
  });
  clients.push(...made);
  return { connected: made.length, replicas: new Set(made.map((c) => c.replica)).size };
}

/** Sends `rate` messages a second for `seconds`, from every client in a room in turn, then waits for deliveries. */
async function step({ rate, seconds, drainMs }) {
  tally = new Tally(nextSeq);
  serverClosed = 0;
  for (const client of clients) client.seen.clear();
  const senders = clients.filter((c) => c.rooms.length > 0);
  const start = now();
  let sent = 0;
  let turn = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = now() - start;
      const due = Math.min(rate * seconds, Math.floor((elapsed / 1000) * rate));
      for (; sent < due; sent++) {
        const sender = senders[turn++ % senders.length];
        sender.say(sender.rooms[0]);
      }
      if (elapsed >= seconds * 1000) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  const sendSeconds = (now() - start) / 1000;
  // Late is not lost: the drain goes on while deliveries still arrive, and ends once none came
  // for drainMs (or at the limit). What never came by then is lost.
  const drainStart = now();
  let progressAt = drainStart;
  let delivered = tally.unique;
  while (tally.unique < tally.expected && now() - progressAt < drainMs && now() - drainStart < DRAIN_LIMIT_MS) {
    await new Promise((r) => setTimeout(r, 20));
    if (tally.unique !== delivered) [delivered, progressAt] = [tally.unique, now()];
  }
  return { ...tally.summary(start, sendSeconds), drainMs: now() - drainStart, serverClosed };
}

/**
 * Drops every listener at once and reconnects them all, Chatter clients resuming from the last
 * id they saw, while the `stormsender` clients (never dropped) keep sending at `rate`. Reports the
 * time until all have rejoined and how many deliveries of the messages sent meanwhile never came.
 */
async function storm({ rate, beforeMs, afterMs }) {
  tally = new Tally(nextSeq);
  presenceFrames = 0;
  const senders = clients.filter((c) => c.name.startsWith('stormsender'));
  const listeners = clients.filter((c) => !senders.includes(c));
  for (const client of listeners) client.all = new Set();
  const firstSeq = nextSeq;
  let sending = true;
  const sendLoop = (async () => {
    const start = now();
    let sent = 0;
    while (sending) {
      const due = Math.floor(((now() - start) / 1000) * rate);
      for (; sent < due; sent++) senders[sent % senders.length].say(senders[sent % senders.length].rooms[0]);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await new Promise((r) => setTimeout(r, beforeMs));

  const dropped = now();
  for (const client of listeners) client.close();
  let failed = 0;
  // When each client had its socket open again, and when it had also rejoined (resumed).
  const opened = [];
  const back = [];
  await Promise.all(
    listeners.map(async (client) => {
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          await client.open();
          opened.push(now() - dropped);
          for (const room of client.rooms) await client.join(room, client.kind === 'chatter' ? client.lastId.get(room) : undefined);
          back.push(now() - dropped);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
        }
      }
      failed++;
    }),
  );
  const allBackMs = now() - dropped;
  await new Promise((r) => setTimeout(r, afterMs));
  sending = false;
  await sendLoop;
  const lastSeq = nextSeq;
  const drainUntil = now() + 5000;
  const missing = () => {
    let count = 0;
    for (const client of listeners) {
      for (let seq = firstSeq; seq < lastSeq; seq++) if (!client.all.has(seq) && !refusedSeqs.has(seq)) count++;
    }
    return count;
  };
  while (missing() > 0 && now() < drainUntil) await new Promise((r) => setTimeout(r, 50));
  const lost = missing();
  for (const client of listeners) client.all = null;
  return {
    listeners: listeners.length,
    rejoined: listeners.length - failed,
    allBackMs,
    openedP50Ms: quantile(opened, 0.5),
    backP50Ms: quantile(back, 0.5),
    backP90Ms: quantile(back, 0.9),
    messages: lastSeq - firstSeq,
    refused: tally.refused,
    presenceFrames,
    lost,
  };
}

function quantile(values, q) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function closeAll() {
  for (const client of clients) client.close();
  clients = [];
  roomSizes.clear();
  return { closed: true };
}

const commands = { connect, step, storm, closeAll };
process.on('message', async ({ id, command, args }) => {
  try {
    process.send({ id, result: await commands[command](args) });
  } catch (err) {
    process.send({ id, error: String(err?.stack ?? err) });
  }
});
process.on('disconnect', () => {
  closeAll();
  process.exit(0);
});
process.send({ ready: true });
