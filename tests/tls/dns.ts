// Minimal DNS responder for the TLS tests: answers every A query with 127.0.0.1 and every
// other query type with an empty NOERROR answer, so pebble (started with
// -dnsserver 127.0.0.1:<port>) resolves names like gw.test to the local nginx.
import dgram from 'node:dgram';

export interface DnsServer {
  port: number;
  queries: { name: string; type: number }[];
  close(): Promise<void>;
}

function readName(msg: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = off;
  for (;;) {
    const len = msg[i];
    if (len === undefined) throw new Error('truncated name');
    if (len === 0) return { name: labels.join('.'), end: i + 1 };
    if ((len & 0xc0) !== 0) throw new Error('compressed name in question');
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
}

export function answer(query: Buffer, ipv4 = '127.0.0.1'): Buffer | null {
  if (query.length < 12) return null;
  const qd = query.readUInt16BE(4);
  if (qd !== 1) return null;
  const { end } = readName(query, 12);
  const qtype = query.readUInt16BE(end);
  const question = query.subarray(12, end + 4);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0); // id
  const rd = query.readUInt16BE(2) & 0x0100;
  header.writeUInt16BE(0x8000 | 0x0400 | rd | 0x0080, 2); // QR AA RD RA, NOERROR
  header.writeUInt16BE(1, 4);
  const isA = qtype === 1;
  header.writeUInt16BE(isA ? 1 : 0, 6);
  const parts = [header, question];
  if (isA) {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
    rr.writeUInt16BE(1, 2); // A
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(5, 6); // TTL
    rr.writeUInt16BE(4, 10);
    ipv4.split('.').forEach((o, k) => rr.writeUInt8(Number(o), 12 + k));
    parts.push(rr);
  }
  return Buffer.concat(parts);
}

export async function startDns(port = 0): Promise<DnsServer> {
  const sock = dgram.createSocket('udp4');
  const queries: { name: string; type: number }[] = [];
  sock.on('message', (msg, rinfo) => {
    try {
      const { name, end } = readName(msg, 12);
      queries.push({ name, type: msg.readUInt16BE(end) });
      const res = answer(msg);
      if (res) sock.send(res, rinfo.port, rinfo.address);
    } catch {
      /* ignore malformed packets */
    }
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, '127.0.0.1', () => resolve());
  });
  return {
    port: sock.address().port,
    queries,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}
