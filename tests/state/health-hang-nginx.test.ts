// A server that accepts connections and never answers, and one that refuses them, probed every
// second with a 500 ms timeout, through real nginx. The probe gives up at the timeout and the
// server goes down after `fall` probes; the probe's fetch must also be over before the next
// round starts, or nginx kills the still-running periodic handler and logs two errors every
// interval ("is already running, killing previous instance", "pending events") for as long as
// the server hangs. The refused probes log their error once, not once a second.
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sleep } from '../support/http.ts';
import { deadPort, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';

const yaml = (port: number, status: number, hung: string, refused: string, good: string) => `
version: 1
global:
  worker_processes: 1
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  pool:
    servers: ["${hung}", "${refused}", "${good}"]
    health_check: { path: /healthz, interval: 1s, timeout: 500ms, fall: 2 }
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: pool
`;

let g: BuiltGateway;
let good: EchoUpstream;
let hung: Server;
const sockets: Socket[] = [];
let hungAddress: string;
let refusedAddress: string;
let port: number;
let statusPort: number;

beforeAll(async () => {
  good = await startEchoUpstream({ id: 'good' });
  // accepts and reads, never writes
  hung = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
  hungAddress = `127.0.0.1:${(hung.address() as { port: number }).port}`;
  refusedAddress = `127.0.0.1:${await deadPort()}`;
  [port, statusPort] = await freePorts(2);
  g = await buildAndStart({
    configPath: path.join(import.meta.dirname, 'health-hang.gateway.yaml'),
    text: yaml(port, statusPort, hungAddress, refusedAddress, good.address),
    env: {},
    ports: [port, statusPort],
  });
});

afterAll(async () => {
  await g?.stop();
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => (hung ? hung.close(resolve) : resolve(undefined)));
  await good?.close();
  await stopAllGateways();
});

describe('health check of a server that never answers', () => {
  it('takes it out after fall probes, and each probe round ends before the next one starts', async () => {
    await withErrorLog(g.gw, async () => {
      const state = async (address = hungAddress) => {
        const r = await send({ port: statusPort, path: '/admin/status' });
        const s = r.json as { upstreams: { name: string; peers: { address: string; state: string; health: { last_probe: { result: string } | null } }[] }[] };
        return s.upstreams.find((u) => u.name === 'pool')!.peers.find((p) => p.address === address)!;
      };
      for (let t = Date.now(); (await state()).state !== 'down'; await sleep(100)) {
        if (Date.now() - t > 8000) throw new Error(`the hung server is still ${(await state()).state} after 8 s`);
      }
      expect((await state()).health.last_probe?.result).toBe('no answer');
      // three more rounds while it still hangs
      await sleep(3200);
      expect((await state(refusedAddress)).state).toBe('down');
      const log = g.gw.errorLog();
      expect(log).toContain('down (2 failed probes, last: no answer)'); // the log read is the gateway's
      // five or more refused probes by now, one line
      expect(log.split('\n').filter((l) => l.includes(`probe of ${refusedAddress}/healthz`))).toHaveLength(1);
      // (njs's fetch logs each refused connection itself, at error level: "recv() failed (111: …)")
      expect(log.split('\n').filter((l) => /already running|pending events|js exception|\[(crit|alert|emerg)\]/.test(l))).toEqual([]);
      // the good server keeps answering
      expect((await send({ port, path: '/api/x' })).status).toBe(200);
    });
  }, 30_000);
});
