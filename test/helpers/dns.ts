// A tiny authoritative DNS server on loopback that answers A queries for one name with a list of
// addresses the test changes at will: Docker's embedded DNS for a scaled service, in miniature.
import { createSocket, type Socket } from 'node:dgram';
import type { TestContext } from 'node:test';

const TYPE_A = 1;
const CLASS_IN = 1;
const NXDOMAIN = 3;

export class ServiceDns {
  /** The addresses answered for `name`, one A record each (as Docker lists a service's containers). */
  addresses: string[] = [];

  private constructor(
    readonly name: string,
    private readonly socket: Socket,
  ) {}

  get address(): string {
    const { address, port } = this.socket.address();
    return `${address}:${port}`;
  }

  static async start(t: TestContext, name: string): Promise<ServiceDns> {
    const socket = createSocket('udp4');
    const dns = new ServiceDns(name.toLowerCase(), socket);
    socket.on('message', (query, peer) => {
      const reply = dns.answer(query);
      if (reply) socket.send(reply, peer.port, peer.address);
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    t.after(() => socket.close());
    return dns;
  }

  private answer(query: Buffer): Buffer | null {
    if (query.length < 12 || query.readUInt16BE(4) !== 1) return null;
    // The question: length-prefixed labels, then type and class.
    const labels: string[] = [];
    let offset = 12;
    while (offset < query.length && query[offset] !== 0) {
      const length = query[offset]!;
      labels.push(query.toString('ascii', offset + 1, offset + 1 + length).toLowerCase());
      offset += 1 + length;
    }
    const questionEnd = offset + 5;
    if (questionEnd > query.length) return null;
    const type = query.readUInt16BE(offset + 1);
    const known = labels.join('.') === this.name;
    const records = known && type === TYPE_A ? this.addresses : [];

    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0); // id
    // QR, authoritative, recursion desired (copied) and available; NXDOMAIN for any other name.
    header.writeUInt16BE(0x8000 | 0x0400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | (known ? 0 : NXDOMAIN), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records.length, 6);
    const answers = records.map((address) => {
      const record = Buffer.alloc(16);
      record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      record.writeUInt16BE(TYPE_A, 2);
      record.writeUInt16BE(CLASS_IN, 4);
      record.writeUInt32BE(1, 6); // TTL, seconds
      record.writeUInt16BE(4, 10);
      address.split('.').forEach((octet, i) => record.writeUInt8(Number(octet), 12 + i));
      return record;
    });
    return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
  }
}
