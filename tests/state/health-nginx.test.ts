// Active health checks through real nginx: a consistent-hash pool of three Node upstreams
// probed every second. Killing one under load fails no client request once the probes took
// it out (retries absorb the detection window), its keys go exactly where `gatewayctl route
// --unavailable` says, /admin/status reports it down, and after a restart it gets traffic
// again within interval × rise (plus the flag file's 1 s cache).
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sleep, waitUntil } from '../support/http.ts';
import { closeAll, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { explainRoute } from '../../src/routing/explain.ts';
import { run as statusCommand } from '../../src/commands/status.ts';
import { capture } from '../support/capture.ts';

const INTERVAL_MS = 1000;
const RISE = 2;
const FALL = 2;

const yaml = (port: number, status: number, ups: EchoUpstream[], dead: number) => `
version: 1
global:
  worker_processes: 2
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  pool:
    balance: consistent_hash
    hash_key: { header: X-User }
    servers: [${ups.map((u) => `"${u.address}"`).join(', ')}]
    health_check: { path: /healthz, interval: ${INTERVAL_MS}ms, timeout: 400ms, rise: ${RISE}, fall: ${FALL} }
  flaky:
    servers: ["127.0.0.1:${dead}"]
    circuit_breaker: { failures: 2, window: 10s, open_for: 30s }
routes:
  - name: flaky
    match: { prefix: /flaky/ }
    upstream: flaky
  - name: api
    match: { prefix: /api/ }
    upstream: pool
    strip_prefix: true
    retries: { tries: 3, on: [error, timeout] }
`;

let ups: EchoUpstream[];
let g: BuiltGateway;
let port: number;
let statusPort: number;
let work: string;

interface PeerStatus {
  address: string;
  state: string;
  health: { status: string; last_probe: { result: string; latency_ms: number } | null } | null;
}
interface UpstreamStatus {
  name: string;
  state: string;
  steered: boolean;
  peers: PeerStatus[];
}

async function status(): Promise<UpstreamStatus[]> {
  const r = await send({ port: statusPort, path: '/admin/status' });
  expect(r.status).toBe(200);
  return (r.json as { upstreams: UpstreamStatus[] }).upstreams;
}

async function peerState(addr: string): Promise<string> {
  const u = (await status()).find((x) => x.name === 'pool')!;
  return u.peers.find((p) => p.address === addr)!.state;
}

async function pollState(addr: string, want: string, ms: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if ((await peerState(addr)) === want) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`${addr} not ${want} after ${ms} ms: ${JSON.stringify(await status())}`);
    await sleep(50);
  }
}

const idOf = (r: { headers: Record<string, unknown> }) => String(r.headers['x-upstream-id'] ?? '');

beforeAll(async () => {
  ups = [await startEchoUpstream({ id: 'a' }), await startEchoUpstream({ id: 'b' }), await startEchoUpstream({ id: 'c' })];
  const [p1, p2, dead] = await freePorts(3);
  [port, statusPort] = [p1, p2];
  work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-health-'));
  const configPath = path.join(work, 'gateway.yaml');
  const text = yaml(port, statusPort, ups, dead);
  await writeFile(configPath, text);
  g = await buildAndStart({ configPath, env: {}, ports: [port, statusPort], text });
  // every server probed up once
  await waitUntil(() => ups.every((u) => u.requests.some((r) => r.path === '/healthz')), 5000, 'the first probes');
});

afterAll(async () => {
  await g?.stop();
  await stopAllGateways();
  await closeAll(ups);
  await rm(work, { recursive: true, force: true });
});

describe('active health checks', () => {
  it('probes from one worker only, and reports every server up with its last probe', async () => {
    await withErrorLog(g.gw, async () => {
      const before = ups[0].requests.filter((r) => r.path === '/healthz').length;
      await sleep(3 * INTERVAL_MS + 200);
      const probes = ups[0].requests.filter((r) => r.path === '/healthz').length - before;
      // two workers, but one prober: about one probe per interval, not two
      expect(probes).toBeGreaterThanOrEqual(2);
      expect(probes).toBeLessThanOrEqual(4);
      const u = (await status()).find((x) => x.name === 'pool')!;
      expect(u.state).toBe('up');
      expect(u.steered).toBe(false);
      for (const p of u.peers) {
        expect(p.state).toBe('up');
        expect(p.health!.status).toBe('up');
        expect(p.health!.last_probe!.result).toBe('passed');
      }
      // gatewayctl status: the same as a table, one row per server
      const out = await capture(() => statusCommand({ config: path.join(work, 'gateway.yaml') }));
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0); // every upstream has a usable server
      const rows = out.stdout.split('\n');
      expect(rows[0]).toMatch(/^UPSTREAM\s+SERVER\s+STATE\s+LAST PROBE\s+BREAKER$/);
      expect(rows[1]).toMatch(new RegExp(`^pool \\(up\\)\\s+${ups[0].address}\\s+up\\s+passed 200 \\d+ms \\d+s ago\\s+-$`));
      expect(out.stdout).toMatch(/flaky \(up\)\s+127\.0\.0\.1:\d+\s+up\s+-\s+closed, 0 failures/);
      expect(out.stdout).not.toContain('drift');
    });
  });

  it('with every server up, keys land where nginx and `gatewayctl route` put them', async () => {
    await withErrorLog(g.gw, async () => {
      for (let k = 0; k < 30; k++) {
        const key = `user-${k}`;
        const r = await send({ port, path: '/api/x', headers: { 'X-User': key } });
        expect(r.status).toBe(200);
        const want = explainRoute(g.model, key).peer;
        expect(ups.find((u) => u.id === idOf(r))!.address).toBe(want);
      }
    });
  });

  it('a killed server: no failed request after detection, keys go to the ring successor, traffic returns within interval × rise', async () => {
    await withErrorLog(g.gw, async () => {
      const victim = ups[1];
      const addr = victim.address;
      const vport = victim.port;
      // load: 4 clients with rotating keys
      let stop = false;
      let detectedAt = Infinity;
      const failures: { at: number; status: number }[] = [];
      let okAfter = 0;
      const client = async (c: number) => {
        for (let n = 0; !stop; n++) {
          const r = await send({ port, path: '/api/load', headers: { 'X-User': `load-${c}-${n % 50}` } });
          if (r.status !== 200) failures.push({ at: Date.now(), status: r.status });
          else if (Date.now() > detectedAt) okAfter++;
        }
      };
      const load = [0, 1, 2, 3].map(client);
      await sleep(300);
      await victim.close();
      const detectMs = await pollState(addr, 'down', FALL * INTERVAL_MS + 3000);
      // the flag file is seen within open_file_cache_valid (1 s)
      detectedAt = Date.now() + 1100;
      await sleep(2500);
      stop = true;
      await Promise.all(load);
      expect(failures.filter((f) => f.at > detectedAt)).toEqual([]);
      expect(okAfter).toBeGreaterThan(20);
      expect(detectMs).toBeLessThanOrEqual(FALL * INTERVAL_MS + 2000);
      const u = (await status()).find((x) => x.name === 'pool')!;
      expect(u.state).toBe('degraded');
      expect(u.steered).toBe(true);

      // placement while it is down: the successor `gatewayctl route --unavailable` names
      let moved = 0;
      for (let k = 0; k < 40; k++) {
        const key = `user-${k}`;
        const r = await send({ port, path: '/api/x', headers: { 'X-User': key } });
        expect(r.status).toBe(200);
        const e = explainRoute(g.model, key, { unavailable: [addr] });
        expect(ups.find((x) => x.id === idOf(r))!.address).toBe(e.peer);
        if (explainRoute(g.model, key).peer === addr) moved++;
      }
      expect(moved).toBeGreaterThan(0); // some keys did belong to the killed server

      // restart: back after `rise` passed probes, seen within the flag cache
      const restarted = await startEchoUpstream({ id: 'b2', port: vport });
      ups[1] = restarted;
      const t0 = Date.now();
      await pollState(addr, 'up', RISE * INTERVAL_MS + 3000);
      const key = Array.from({ length: 40 }, (_, k) => `user-${k}`).find((k) => explainRoute(g.model, k).peer === addr)!;
      for (;;) {
        const r = await send({ port, path: '/api/x', headers: { 'X-User': key } });
        expect(r.status).toBe(200);
        if (idOf(r) === 'b2') break;
        if (Date.now() - t0 > RISE * INTERVAL_MS + 1000 + 2500) throw new Error('traffic did not return to the restarted server');
        await sleep(50);
      }
      expect(Date.now() - t0).toBeLessThanOrEqual(RISE * INTERVAL_MS + 1000 + 2500);
      expect((await status()).find((x) => x.name === 'pool')!.steered).toBe(false);
      expect(g.gw.errorLog()).toMatch(/upstream pool server 127\.0\.0\.1:\d+: down \(2 failed probes/);
      expect(g.gw.errorLog()).toMatch(/upstream pool server 127\.0\.0\.1:\d+: up \(2 passed probes\)/);
    });
  }, 40_000);

  it('a breaker without the metrics feature: the log of failed requests opens it, then 503 + Retry-After at once', async () => {
    await withErrorLog(g.gw, async () => {
      expect((await send({ port, path: '/flaky/x' })).status).toBe(502);
      expect((await send({ port, path: '/flaky/x' })).status).toBe(502);
      await waitUntil(() => /upstream flaky server 127\.0\.0\.1:\d+: open \(2 failures within 10s\)/.test(g.gw.errorLog()), 2000, 'the breaker to open');
      await sleep(1100);
      const r = await send({ port, path: '/flaky/x' });
      expect(r.status).toBe(503);
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(25);
      expect((r.json as { error: { code: string } }).error.code).toBe('upstream_unavailable');
      const u = (await status()).find((x) => x.name === 'flaky')!;
      expect(u.state).toBe('down');
      expect((u.peers[0] as unknown as { breaker: { state: string } }).breaker.state).toBe('open');
      // a healthy route pays nothing for it: the pool is still served by nginx's balancer
      expect((await send({ port, path: '/api/x', headers: { 'X-User': 'k' } })).status).toBe(200);
    });
  });

  it('while steered, a try that fails on the picked server moves on to the others (no failed request)', async () => {
    await withErrorLog(g.gw, async () => {
      await ups[0].close();
      await pollState(ups[0].address, 'down', FALL * INTERVAL_MS + 3000);
      await sleep(1100); // the flag file is seen
      // a second server dies: until its probes notice, picks still land on it
      await ups[2].close();
      const t0 = Date.now();
      const failures: number[] = [];
      let onDead = 0;
      for (let k = 0; Date.now() - t0 < 1200; k++) {
        const key = `user-${k % 40}`;
        if (explainRoute(g.model, key, { unavailable: [ups[0].address] }).peer === ups[2].address) onDead++;
        const r = await send({ port, path: '/api/x', headers: { 'X-User': key } });
        if (r.status !== 200) failures.push(r.status);
      }
      expect(onDead).toBeGreaterThan(0);
      expect(failures).toEqual([]);
    });
  });
});
