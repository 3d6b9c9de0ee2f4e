// Free loopback ports for integration tests, handed out below the kernel's ephemeral range.
//
// A port is handed out now and bound later (by nginx, a test server). Ports the kernel picks
// itself (a listen on port 0, the local side of every outgoing connection) come from the
// ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768–60999 by default), so a port
// taken from there could be given to a client socket between the probe and the bind: nginx
// then fails with "Address already in use". Ports below that range are never picked by the
// kernel. Each vitest worker (VITEST_POOL_ID) has its own slice of them, so two test processes
// never hand out the same port; within a process a set makes sure no port is handed out twice,
// and a probe (a listen on exactly that port) skips one something else holds.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const handedOut = new Set<number>();

/** the first port of the kernel's ephemeral range (32768 when it cannot be read) */
function ephemeralStart(): number {
  try {
    const start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > 1024 ? start : 32768;
  } catch {
    return 32768;
  }
}

const SLICES = 16;
const HIGH = Math.min(ephemeralStart(), 32768);
const LOW = Math.max(10000, HIGH - 16 * 700);
const SLICE = Math.floor((HIGH - LOW) / SLICES);
const slice = Number(process.env.VITEST_POOL_ID ?? 0) % SLICES;
// where this process starts in its slice: test files running one after another in the same
// worker (each with a fresh copy of this module) do not begin with the ports the last one used
let cursor = Math.floor(Math.random() * SLICE);

/** Listen on `port` (0: the kernel picks one) and close again at once: the port, or 0 when busy. */
function probe(port: number): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(0));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(got));
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago and was not returned before in this process. */
export async function freePort(): Promise<number> {
  if (SLICE >= 50) {
    for (let attempt = 0; attempt < SLICE; attempt++) {
      const port = LOW + slice * SLICE + (cursor++ % SLICE);
      if (!handedOut.has(port) && (await probe(port)) === port) {
        handedOut.add(port);
        return port;
      }
    }
  }
  // the kernel's pick (the ephemeral range): only when the slice has no free port left
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await probe(0);
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: could not find an unused loopback port');
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort());
  return out;
}
