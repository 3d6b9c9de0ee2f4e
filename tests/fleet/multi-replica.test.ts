// Three gateway instances built from one gateway.yaml behind a front balancer (nginx stream
// from the project runtime), all on loopback:
// 1. under steady load, one replica is restarted and another gets a config change: clients
//    that retry idempotent requests see no failure;
// 2. each fleet.limits mode is measured: how many requests the fleet admits for one client
//    against the allowance of its zone (burst + rate × elapsed). The figures are printed
//    (README, "Several replicas") and bounded here.
// One build; each replica's copy listens on ports of its own (as on a host of its own), so
// all report the same config hash: `gatewayctl replicas` sees the drift mid-rollout.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBuild } from '../../src/build/write.ts';
import { compileOrThrow } from '../support/gateway.ts';
import { capture } from '../support/capture.ts';
import { listenKey, rewriteForShadow } from '../../src/deploy/shadow.ts';
import { run as replicas } from '../../src/commands/replicas.ts';
import { get, sleep } from '../support/http.ts';
import { startGateway, startRawNginx, stopAllGateways, type Gateway } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { deadPort, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { readyHash, steadyLoad } from '../deploy/helpers.ts';

type Mode = 'per_instance' | 'divided' | 'affinity';
const RATE = 10; // r/s
const BURST = 10;

const work = mkdtempSync(path.join(os.tmpdir(), 'gw-fleet-'));
const configPath = path.join(work, 'gateway.yaml');
let upstream: EchoUpstream;

function config(mode: Mode, extraRoute = ''): string {
  return `version: 1
global:
  worker_processes: 1
  status:
    listen: 127.0.0.1:8081
listeners:
  - name: public
    address: 127.0.0.1
    port: 8080
upstreams:
  api:
    servers:
      - ${upstream.address}
limits:
  rate:
    per_client:
      key: { header: X-Client }
      rate: ${RATE}r/s
      burst: ${BURST}
fleet:
  replicas: 3
  limits: ${mode}
routes:
  - name: limited
    match: { prefix: /limited/ }
    upstream: api
    rate_limits: [per_client]
  - name: api
    match: { prefix: /api/ }
    upstream: api
${extraRoute}`;
}

interface Replica {
  gw: Gateway;
  dir: string;
  /** the replica's public and status ports (its listen addresses, as on a host of its own) */
  port: number;
  statusPort: number;
}

interface Fleet {
  replicas: Replica[];
  front: Gateway;
  frontPort: number;
  stop(): Promise<void>;
}

/**
 * A replica of the build `files`, as if on a host of its own: the listen addresses of its
 * copy are moved to free loopback ports through the config tokenizer (as deploy's shadow
 * proof does); nothing else differs, so every replica reports the same input hash.
 */
async function replicaFiles(files: Record<string, string>, ports: number[]): Promise<{ files: Record<string, string>; port: number; statusPort: number }> {
  const queue = [...ports];
  const rw = await rewriteForShadow(files, async () => queue.shift()!);
  const portOf = (listen: string) => Number(rw.addrs.get(listenKey(listen))!.split(':').pop());
  return { files: { ...files, ...rw.files }, port: portOf('127.0.0.1:8080'), statusPort: portOf('127.0.0.1:8081') };
}

async function startReplica(dir: string, files: Record<string, string>, ports: number[]): Promise<Replica> {
  const r = await replicaFiles(files, ports);
  writeBuild(dir, r.files);
  const gw = await startGateway({ distDir: dir, ports: [r.port, r.statusPort] });
  return { gw, dir, port: r.port, statusPort: r.statusPort };
}

/** Three replicas of `text` and a stream balancer in front (round robin, or hashing the client address). */
async function startFleet(text: string, balance: 'round_robin' | 'client_hash'): Promise<Fleet> {
  writeFileSync(configPath, text);
  const { files } = compileOrThrow(configPath, {});
  const ports = await freePorts(7);
  const replicas: Replica[] = [];
  for (let i = 0; i < 3; i++) replicas.push(await startReplica(mkdtempSync(path.join(work, `replica-${i}-`)), files, [ports[2 * i], ports[2 * i + 1]]));
  const frontPort = ports[6];
  const front = await startRawNginx(
    `load_module modules/ngx_stream_module.so;
events { worker_connections 1024; }
stream {
    upstream fleet {
        ${balance === 'client_hash' ? 'hash $remote_addr consistent;' : ''}
        ${replicas.map((r) => `server 127.0.0.1:${r.port} max_fails=1 fail_timeout=2s;`).join('\n        ')}
    }
    server {
        listen 127.0.0.1:${frontPort};
        proxy_pass fleet;
        proxy_connect_timeout 1s;
        proxy_next_upstream on;
    }
}
`,
    [frontPort],
  );
  return {
    replicas,
    front,
    frontPort,
    // all at once: on a loaded machine four stops one after another (each up to 7 s when
    // nginx is slow to quit) took a test past its timeout
    stop: async () => {
      await Promise.all([front.stop(), ...replicas.map((r) => r.gw.stop())]);
    },
  };
}

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'api' });
});

afterAll(async () => {
  await stopAllGateways();
  await upstream?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('three replicas behind a front balancer', () => {
  it('a replica restarted and another reconfigured under load: no failed request for a retrying client', async () => {
    const fleet = await startFleet(config('divided'), 'round_robin');
    try {
      const load = steadyLoad(fleet.frontPort, { total: 100000, concurrency: 4, pauseMs: 2, retries: 3 });
      await sleep(500);
      // replica 0: stopped (fast shutdown: its open requests are cut) and started again
      const r0 = fleet.replicas[0];
      await r0.gw.stop();
      await sleep(300);
      r0.gw = await startGateway({ distDir: r0.dir, ports: [r0.port, r0.statusPort] });
      await sleep(300);
      // replica 1: a new gateway.yaml (one more route) built and reloaded
      const r1 = fleet.replicas[1];
      const before = await readyHash(r1.statusPort);
      writeFileSync(configPath, config('divided', '  - name: v2\n    match: { prefix: /v2/ }\n    upstream: api\n'));
      writeBuild(r1.dir, (await replicaFiles(compileOrThrow(configPath, {}).files, [r1.port, r1.statusPort])).files);
      await r1.gw.reload();
      const after = await readyHash(r1.statusPort);
      expect(after).not.toBe(before);
      expect((await get(r1.port, '/v2/x')).status).toBe(200);
      // mid-rollout: `gatewayctl replicas` reports the two replicas still on the old config
      const drift = await capture(() => replicas({ config: configPath, endpoint: fleet.replicas.map((r) => `127.0.0.1:${r.statusPort}`) }));
      expect(drift.code).toBe(1);
      expect(drift.stdout.split('\n').filter((l) => l.includes(`DRIFT (serves ${before!.slice(0, 12)})`))).toHaveLength(2);
      expect(drift.stdout).toContain(`127.0.0.1:${r1.statusPort}`.padEnd(24) + ' current');
      expect(drift.stderr).toContain('1/3 replicas serve');
      await sleep(500);
      const stats = await load.stop();
      console.log(`availability: ${stats.ok} ok, ${stats.failed} failed, ${stats.retried.length} retried (restart + reload under load)`);
      expect(stats.failures).toEqual([]);
      expect(stats.ok).toBeGreaterThan(200);
      // the rollout finished: every replica on the new config, and nothing else answers
      for (const r of [fleet.replicas[0], fleet.replicas[2]]) {
        writeBuild(r.dir, (await replicaFiles(compileOrThrow(configPath, {}).files, [r.port, r.statusPort])).files);
        await r.gw.reload();
      }
      const endpoints = fleet.replicas.map((r) => `127.0.0.1:${r.statusPort}`);
      const done = await capture(() => replicas({ config: configPath, endpoint: endpoints }));
      expect(done.code, done.stderr).toBe(0);
      expect(done.stdout).toContain('3/3 replicas serve');
      const dead = `127.0.0.1:${await deadPort()}`;
      const gone = await capture(() => replicas({ config: configPath, endpoint: [...endpoints.slice(0, 2), dead] }));
      expect(gone.code).toBe(1);
      expect(gone.stdout).toMatch(/UNREACHABLE \(connect ECONNREFUSED/);
      expect(gone.stderr).toContain('2/3 replicas serve');
      const fewer = await capture(() => replicas({ config: configPath, endpoint: endpoints.slice(0, 2) }));
      expect(fewer.code).toBe(1);
      expect(fewer.stderr).toContain('1 fewer than fleet.replicas 3');
    } finally {
      await fleet.stop();
    }
  });

  /** One client (its own source address and X-Client) sending as fast as it can for `ms`. */
  async function measure(fleet: Fleet, client: number, ms: number): Promise<{ admitted: number; limited: number; other: number; seconds: number }> {
    const out = { admitted: 0, limited: 0, other: 0, seconds: 0 };
    const started = Date.now();
    const loop = async () => {
      while (Date.now() - started < ms) {
        const r = await get(fleet.frontPort, '/limited/x', { headers: { 'X-Client': `client-${client}` }, localAddress: `127.0.0.${10 + client}` });
        if (r.status === 200) out.admitted++;
        else if (r.status === 429) out.limited++;
        else out.other++;
      }
    };
    await Promise.all([loop(), loop()]);
    out.seconds = (Date.now() - started) / 1000;
    return out;
  }

  const figures: string[] = [];
  // vitest prints console output of the run; the README quotes these lines
  afterAll(() => {
    if (figures.length) console.log(['fleet.limits over 3 replicas (one client, 10r/s burst 10):', ...figures].join('\n'));
  });

  it.each([
    ['per_instance', 'round_robin'],
    ['divided', 'round_robin'],
    ['affinity', 'client_hash'],
    // divided when one instance receives all of a client's requests (a pinned connection,
    // a hashing front tier): the lower error bound, allowance ÷ replicas
    ['divided', 'client_hash'],
  ] as const)('fleet.limits: %s (front: %s) — admitted against the allowance', async (mode, balance) => {
    const fleet = await startFleet(config(mode), balance);
    try {
      const m = await measure(fleet, mode.length, 2000);
      const allowance = BURST + RATE * m.seconds;
      const ratio = m.admitted / allowance;
      figures.push(`  ${`${mode} (${balance})`.padEnd(26)} admitted ${m.admitted} of ${m.admitted + m.limited} requests in ${m.seconds.toFixed(2)} s; allowance ${allowance.toFixed(1)}; ${ratio.toFixed(2)}x`);
      expect(m.other).toBe(0);
      expect(m.limited).toBeGreaterThan(0);
      // each instance admits at most its own burst + 1 and its rate share over the window
      const perInstance = mode === 'divided' ? { burst: Math.floor(BURST / 3), rate: Math.floor((RATE * 60) / 3) / 60 } : { burst: BURST, rate: RATE };
      const instances = balance === 'client_hash' ? 1 : 3;
      expect(m.admitted).toBeLessThanOrEqual(instances * (perInstance.burst + 1 + perInstance.rate * m.seconds) + 1);
      if (mode === 'per_instance') expect(ratio).toBeGreaterThan(1.5); // the overshoot divided and affinity remove
      else expect(ratio).toBeLessThanOrEqual(1.1);
      if (mode === 'divided' && balance === 'client_hash') expect(ratio).toBeLessThan(0.5);
    } finally {
      await fleet.stop();
    }
  }, 120_000); // four nginx started and stopped per case: slow when the machine is loaded
});
