// Circuit breaker on a single-server upstream, through real nginx with the metrics feature on
// (the breaker's counting rides in metrics' one log-phase call): after `failures` failed
// requests the gateway answers 503 + Retry-After at once without reaching the server, the
// model it serves leaves /v1/models and gets an OpenAI-style 503, /admin/status and /metrics
// show the open breaker; after open_for one trial goes through (a second one meanwhile is
// refused) and its success closes the breaker.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sendCounted, sleep, waitUntil } from '../support/http.ts';
import { closeAll, startEchoUpstream, startFixedStatusUpstream, type EchoUpstream, type FixedStatusUpstream } from '../support/upstreams.ts';

const FAILURES = 3;
const OPEN_MS = 3000;

const yaml = (port: number, status: number, bad: string, good: string, bad2: string) => `
version: 1
global:
  worker_processes: 2
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  single:
    servers: ["${bad}"]
    circuit_breaker: { failures: ${FAILURES}, window: 30s, open_for: ${OPEN_MS}ms, half_open_requests: 1 }
  pool:
    servers: ["${good}"]
  duo:
    servers: ["${bad2}", "${good}"]
    circuit_breaker: { failures: 2, window: 30s, open_for: 2s }
models:
  - { id: small, upstream: pool }
  - { id: big, upstream: single }
routes:
  - name: one
    match: { prefix: /one/ }
    upstream: single
    strip_prefix: true
  - name: duo
    match: { prefix: /duo/ }
    upstream: duo
  - name: chat
    match: { exact: /v1/chat/completions }
    models: route
  - name: models
    match: { exact: /v1/models }
    models: list
metrics: {}
cluster_status: { listener: public }
`;

let bad: FixedStatusUpstream;
let bad2: FixedStatusUpstream;
let good: EchoUpstream;
let g: BuiltGateway;
let port: number;
let statusPort: number;
let work: string;

interface Breaker {
  state: string;
  retry_after_s: number | null;
}
async function breaker(): Promise<Breaker> {
  const r = await send({ port: statusPort, path: '/admin/status' });
  expect(r.status).toBe(200);
  const u = (r.json as { upstreams: { name: string; state: string; peers: { breaker: Breaker }[] }[] }).upstreams.find((x) => x.name === 'single')!;
  return u.peers[0].breaker;
}

const modelIds = async () => ((await send({ port, path: '/v1/models' })).json as { data: { id: string }[] }).data.map((m) => m.id);
const chat = (model: string) => send({ port, method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model, messages: [] }) });

beforeAll(async () => {
  bad = await startFixedStatusUpstream('bad', 502);
  bad2 = await startFixedStatusUpstream('bad2', 503);
  good = await startEchoUpstream({ id: 'good' });
  [port, statusPort] = await freePorts(2);
  work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-breaker-'));
  const configPath = path.join(work, 'gateway.yaml');
  const text = yaml(port, statusPort, bad.address, good.address, bad2.address);
  await writeFile(configPath, text);
  g = await buildAndStart({ configPath, env: {}, ports: [port, statusPort], text });
});

afterAll(async () => {
  await g?.stop();
  await stopAllGateways();
  await closeAll([bad, bad2, good]);
  await rm(work, { recursive: true, force: true });
});

describe('circuit breaker on a single-server upstream', () => {
  it('opens after N failures: 503 + Retry-After at once, no request reaches the server, the model disappears', async () => {
    await withErrorLog(g.gw, async () => {
      expect(await modelIds()).toEqual(['small', 'big']);
      expect((await breaker()).state).toBe('closed');
      for (let i = 0; i < FAILURES; i++) expect((await send({ port, path: '/one/x' })).status).toBe(502);
      expect(bad.hits).toBe(FAILURES);
      await waitUntil(() => /upstream single server 127\.0\.0\.1:\d+: open \(3 failures within 30s\)/.test(g.gw.errorLog()), 5000, 'the breaker to open');
      expect((await breaker()).state).toBe('open');
      // the flag file is seen once open_file_cache revalidates (1 s)
      await sleep(1100);
      const hitsBefore = bad.hits;
      const times: number[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await send({ port, path: '/one/x' });
        expect(r.status).toBe(503);
        const ra = Number(r.headers['retry-after']);
        expect(ra).toBeGreaterThanOrEqual(1);
        expect(ra).toBeLessThanOrEqual(OPEN_MS / 1000);
        expect((r.json as { error: { code: string } }).error.code).toBe('upstream_unavailable');
        times.push(r.headerMs);
      }
      expect(bad.hits).toBe(hitsBefore);
      // answered by nginx + one js_set, no connection upstream: under 5 ms (the fastest of 20:
      // one quiet moment suffices; the median gets a wide margin, two shared CPUs run the other
      // suites in parallel and a loaded CI host stalls single requests)
      times.sort((a, b) => a - b);
      expect(times[0]).toBeLessThan(5);
      expect(times[Math.floor(times.length / 2)]).toBeLessThan(100);

      // the model served only by the open server: gone from /v1/models, OpenAI-style 503
      expect(await modelIds()).toEqual(['small']);
      const r = await chat('big');
      expect(r.status).toBe(503);
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(r.json).toMatchObject({ error: { type: 'server_error', code: 'model_unavailable' } });
      expect((r.json as { error: { message: string } }).error.message).toContain('`big`');
      expect((await chat('small')).status).toBe(200);

      // the status route clients may read: no addresses, the model unavailable
      const cs = await send({ port, path: '/v1/cluster/status' });
      expect(cs.status).toBe(200);
      expect(cs.json).toMatchObject({
        object: 'cluster.status',
        status: 'degraded',
        upstreams: [
          { name: 'single', status: 'down', servers: { up: 0, total: 1 } },
          { name: 'duo', status: 'ok', servers: { up: 2, total: 2 } },
        ],
        models: [
          { id: 'small', status: 'available' },
          { id: 'big', status: 'unavailable' },
        ],
      });
      expect(cs.text).not.toContain('127.0.0.1');

      const m = (await sendCounted({ port: statusPort, path: '/metrics' })).text;
      expect(m).toContain(`gatewayctl_upstream_peer_state{upstream="single",peer="${bad.address}",state="open"} 1`);
      expect(m).toContain(`gatewayctl_upstream_peer_transitions_total{upstream="single",peer="${bad.address}",to="open"} 1`);
      expect(m).not.toContain('upstream="pool",peer='); // no health check nor breaker: no state
      expect(m).toContain(`gatewayctl_upstream_peer_state{upstream="duo",peer="${bad2.address}",state="up"} 1`);
      // the families of metrics and of the state plane make one valid exposition (each family
      // has one HELP and one TYPE line: a second one is a parse error for promtool)
      const lint = spawnSync('promtool', ['check', 'metrics'], { input: m, encoding: 'utf8' });
      expect(lint.error, 'promtool is required (Debian package prometheus)').toBeUndefined();
      expect(`${lint.stdout}${lint.stderr}`.trim(), m).toBe('');
      expect(m.match(/^# TYPE gatewayctl_upstream_peer_state /gm)).toHaveLength(1);

      // a reload keeps the state (the shared dict and the flag files stay)
      await g.gw.reload();
      expect((await breaker()).state).toBe('open');
      const after = await send({ port, path: '/one/x' });
      expect(after.status).toBe(503);
      expect(bad.hits).toBe(hitsBefore);
    });
  });

  it('after open_for: one trial at a time goes through; its success closes the breaker', async () => {
    await withErrorLog(g.gw, async () => {
      // the server recovers on the same address
      const addr = bad.address;
      const p = bad.port;
      await bad.close();
      const healed = await startEchoUpstream({ id: 'healed', port: p });
      try {
        await waitUntil(() => /upstream single server 127\.0\.0\.1:\d+: half_open/.test(g.gw.errorLog()), OPEN_MS + 3000, 'half-open');
        expect((await breaker()).state).toBe('half_open');
        // a slow trial holds the only place; a request meanwhile is refused
        const trial = send({ port, path: '/one/slow?ms=600' });
        await sleep(200);
        const meanwhile = await send({ port, path: '/one/x' });
        expect(meanwhile.status).toBe(503);
        const t = await trial;
        expect(t.status).toBe(200);
        expect(t.headers['x-upstream-id']).toBe('healed');
        expect(healed.hits).toBe(1);
        await waitUntil(() => /upstream single server 127\.0\.0\.1:\d+: closed \(a half-open trial succeeded\)/.test(g.gw.errorLog()), 2000, 'closed');
        expect((await breaker()).state).toBe('closed');
        for (let i = 0; i < 5; i++) expect((await send({ port, path: '/one/x' })).status).toBe(200);
        expect(await modelIds()).toEqual(['small', 'big']);
        expect(addr).toBe(healed.address);
      } finally {
        await healed.close();
      }
    });
  }, 20_000);

  it('two servers: the open one is skipped, and once half-open its trial goes out with the next requests (a pick elsewhere does not use up its place)', async () => {
    await withErrorLog(g.gw, async () => {
      const statuses: number[] = [];
      while (bad2.hits < 2) statuses.push((await send({ port, path: '/duo/x' })).status);
      await waitUntil(() => /upstream duo server 127\.0\.0\.1:\d+: open/.test(g.gw.errorLog()), 2000, 'the breaker to open');
      await sleep(1100);
      const hits = bad2.hits;
      for (let i = 0; i < 10; i++) expect((await send({ port, path: '/duo/x' })).status).toBe(200);
      expect(bad2.hits).toBe(hits); // open: skipped
      await waitUntil(() => /upstream duo server 127\.0\.0\.1:\d+: half_open/.test(g.gw.errorLog()), 4000, 'half-open');
      for (let i = 0; i < 6; i++) await send({ port, path: '/duo/x' });
      expect(bad2.hits).toBe(hits + 1); // exactly one trial, among the first requests
      expect(g.gw.errorLog()).toMatch(/upstream duo server 127\.0\.0\.1:\d+: open \(a half-open trial failed\)/);
    });
  });
});
