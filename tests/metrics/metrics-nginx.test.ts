// Prometheus metrics through real nginx: traffic through a gateway with `metrics:` on, then the
// exposition at /metrics on the status listener counts exactly what was sent (per route, method,
// code, upstream; cache results; rate-limited and auth-failed requests), its histograms put a
// slow upstream's requests above the delay, and Debian's `promtool check metrics` accepts it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePort, freePorts } from '../support/ports.ts';
import { scrapeSamples, send, sleep } from '../support/http.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { dashboardQueries, familiesIn } from './dashboard.ts';

const BUCKETS = [0.05, 0.1, 0.2, 0.3, 0.5, 1, 5];

// buckets null: the default bounds (plain routes then take the log-phase fast path,
// njs/lib/metrics.ts metricsLogFast; custom bounds always take the full handler)
const yaml = (port: number, status: number, upstream: string, buckets: number[] | null = BUCKETS) => `
version: 1
global:
  worker_processes: 2
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  app:
    servers: ["${upstream}"]
limits:
  rate:
    one: { rate: 1r/m, burst: 0 }
caches:
  pages: { size: 1m }
auth:
  api_keys: { file: keys.yaml }
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: app
    strip_prefix: true
  - name: slow
    match: { prefix: /slow/ }
    upstream: app
    strip_prefix: true
  - name: scraped
    match: { prefix: /scraped/ }
    upstream: app
    strip_prefix: true
  - name: limited
    match: { prefix: /limited/ }
    upstream: app
    rate_limits: [one]
  - name: pages
    match: { prefix: /pages/ }
    upstream: app
    cache: { zone: pages, ttl: { "200": 1m } }
  - name: keyed
    match: { prefix: /keyed/ }
    upstream: app
    auth: api_key
  - name: constructor
    match: { prefix: /proto/ }
    upstream: app
  - name: hello
    match: { exact: /hello }
    respond: { status: 200, body: "hi" }
metrics:${buckets ? `\n  buckets: [${buckets.join(', ')}]` : ' {}'}
`;

let upstream: EchoUpstream;
let project: Project;
let port: number;
let statusPort: number;
let apiKey: string;

async function scrape(at = statusPort): Promise<{ text: string; values: Map<string, number> }> {
  const { text, values, res } = await scrapeSamples(at);
  expect(String(res.headers['content-type'])).toBe('text/plain; version=0.0.4; charset=utf-8');
  return { text, values };
}

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  [port, statusPort] = await freePorts(2);
  const store: KeyFile = { version: 1, keys: [] };
  apiKey = createKey(store, { name: 'alice' }, new Date()).key;
  project = await startProject({ 'gateway.yaml': yaml(port, statusPort, upstream.address), 'keys.yaml': serializeKeys(store) }, [port, statusPort]);
});

afterAll(async () => {
  await project?.stop();
  await upstream?.close();
  await stopAllGateways();
});

/** The same traffic, then every family it should move, exactly: on the gateway at (port, statusPort). */
async function countsExactly(gw: Project, port: number, statusPort: number, apiKey: string): Promise<void> {
  await withErrorLog(gw.gw, async () => {
    const before = (await scrape(statusPort)).values;
    // the scrape itself is not counted (access_log off on the status listener)
    expect([...before.keys()].filter((k) => k.startsWith('gatewayctl_requests_total{'))).toEqual([]);
    const sent: [string, string, number][] = [];
    const go = async (method: string, path: string, status: number, headers: Record<string, string> = {}) => {
      const res = await send({ port, method, path, headers });
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(status);
      sent.push([method, path, status]);
    };
    for (let i = 0; i < 5; i++) await go('GET', '/api/x', 200);
    for (let i = 0; i < 3; i++) await go('POST', '/api/x', 200);
    for (let i = 0; i < 2; i++) await go('GET', '/api/status/503', 503);
    await go('GET', '/limited/a', 200);
    for (let i = 0; i < 2; i++) await go('GET', '/limited/a', 429);
    await go('GET', '/pages/p', 200); // miss
    await go('GET', '/pages/p', 200); // hit
    await go('GET', '/pages/p', 200); // hit
    await go('GET', '/keyed/a', 401); // no key
    await go('GET', '/keyed/a', 401, { 'X-API-Key': 'gw_wrong_key_0123456789abcdefghijklmnop' });
    await go('GET', '/keyed/a', 200, { 'X-API-Key': apiKey });
    for (let i = 0; i < 4; i++) await go('GET', '/hello', 200);
    await go('GET', '/nowhere', 404);
    await go('GET', '/proto/x', 200); // a route named like an Object.prototype property

    // the log phase runs after the answer is sent: poll until the last one is counted
    let v = (await scrape(statusPort)).values;
    for (let i = 0; i < 50 && (v.get('gatewayctl_requests_total{route="-",method="GET",code="404",status_class="4xx",upstream="none"}') ?? 0) < 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      v = (await scrape(statusPort)).values;
    }
    const req = (route: string, method: string, code: number, up: string) =>
      v.get(`gatewayctl_requests_total{route="${route}",method="${method}",code="${code}",status_class="${String(code)[0]}xx",upstream="${up}"}`);
    expect(req('api', 'GET', 200, 'app')).toBe(5);
    expect(req('api', 'POST', 200, 'app')).toBe(3);
    expect(req('api', 'GET', 503, 'app')).toBe(2);
    expect(req('limited', 'GET', 200, 'app')).toBe(1);
    expect(req('limited', 'GET', 429, 'none')).toBe(2);
    expect(req('pages', 'GET', 200, 'app')).toBe(3);
    expect(req('keyed', 'GET', 401, 'none')).toBe(2);
    expect(req('keyed', 'GET', 200, 'app')).toBe(1);
    expect(req('hello', 'GET', 200, 'none')).toBe(4);
    expect(req('-', 'GET', 404, 'none')).toBe(1);
    expect(req('constructor', 'GET', 200, 'app')).toBe(1);
    expect(v.get('gatewayctl_request_duration_seconds_count{route="constructor"}')).toBe(1);
    const total = [...v.entries()].filter(([k]) => k.startsWith('gatewayctl_requests_total{')).reduce((a, [, x]) => a + x, 0);
    expect(total).toBe(sent.length);

    // every request is in its route's duration histogram exactly once; upstream times only when proxied
    expect(v.get('gatewayctl_request_duration_seconds_count{route="api"}')).toBe(10);
    expect(v.get('gatewayctl_request_duration_seconds_bucket{route="api",le="+Inf"}')).toBe(10);
    expect(v.get('gatewayctl_upstream_response_duration_seconds_count{route="api"}')).toBe(10);
    expect(v.get('gatewayctl_request_duration_seconds_count{route="hello"}')).toBe(4);
    expect(v.has('gatewayctl_upstream_response_duration_seconds_count{route="hello"}')).toBe(false);
    expect(v.get('gatewayctl_upstream_response_duration_seconds_count{route="pages"}')).toBe(1); // two hits never reach it
    expect(v.get('gatewayctl_request_duration_seconds_count{route="slow"}')).toBe(0); // configured routes start at zero

    expect(v.get('gatewayctl_cache_requests_total{route="pages",zone="pages",result="miss"}')).toBe(1);
    expect(v.get('gatewayctl_cache_requests_total{route="pages",zone="pages",result="hit"}')).toBe(2);
    expect(v.get('gatewayctl_limited_requests_total{route="limited",limit="rate"}')).toBe(2);
    expect(v.get('gatewayctl_auth_failures_total{route="keyed",reason="missing_key"}')).toBe(1);
    expect(v.get('gatewayctl_auth_failures_total{route="keyed",reason="unknown_key"}')).toBe(1);
    expect([...v.keys()].filter((k) => k.startsWith('gatewayctl_auth_failures_total{')).length).toBe(2);
    expect(v.get('gatewayctl_request_bytes_total{route="hello"}')).toBeGreaterThan(4 * 'GET /hello HTTP/1.1\r\n'.length);
    expect(v.get('gatewayctl_response_bytes_total{route="hello"}')).toBeGreaterThan(4 * 'hi'.length);
    // passive peer health: the two 503s the peer answered, by peer address
    expect(v.get(`gatewayctl_upstream_peer_failures_total{upstream="app",peer="${upstream.address}",code="503"}`)).toBe(2);
    expect([...v.keys()].filter((k) => k.startsWith('gatewayctl_upstream_peer_failures_total{')).length).toBe(1);
    expect(v.get('gatewayctl_metrics_overflow_total')).toBe(0);
    expect(v.get('gatewayctl_metrics_errors_total')).toBe(0);
  });
}
describe('metrics through real nginx', () => {
  it('counts exactly the requests sent, by route, method, code, upstream, cache result, limit and auth reason', async () => {
    await countsExactly(project, port, statusPort, apiKey);
  });

  it('counts the same with the default bounds, where plain requests take the log-phase fast path', async () => {
    const [p2, s2] = await freePorts(2);
    const store: KeyFile = { version: 1, keys: [] };
    const key = createKey(store, { name: 'alice' }, new Date()).key;
    const gw = await startProject({ 'gateway.yaml': yaml(p2, s2, upstream.address, null), 'keys.yaml': serializeKeys(store) }, [p2, s2]);
    try {
      await countsExactly(gw, p2, s2, key);
    } finally {
      await gw.stop();
    }
  });

  it('puts requests to a slow upstream in the buckets above its delay', async () => {
    await withErrorLog(project.gw, async () => {
      for (let i = 0; i < 4; i++) expect((await send({ port, path: '/slow/slow?ms=250' })).status).toBe(200);
      let v = (await scrape()).values;
      for (let i = 0; i < 50 && v.get('gatewayctl_request_duration_seconds_count{route="slow"}') !== 4; i++) {
        await new Promise((r) => setTimeout(r, 100));
        v = (await scrape()).values;
      }
      const bucket = (fam: string, le: string) => v.get(`${fam}_bucket{route="slow",le="${le}"}`);
      for (const fam of ['gatewayctl_request_duration_seconds', 'gatewayctl_upstream_response_duration_seconds']) {
        expect(bucket(fam, '0.2'), fam).toBe(0); // each took at least the 250 ms the upstream held it
        expect(bucket(fam, '5'), fam).toBe(4);
        expect(v.get(`${fam}_count{route="slow"}`)).toBe(4);
        expect(v.get(`${fam}_sum{route="slow"}`)).toBeGreaterThanOrEqual(1);
      }
      // buckets are cumulative
      const les = [...BUCKETS.map(String), '+Inf'];
      const counts = les.map((le) => bucket('gatewayctl_request_duration_seconds', le)!);
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
    });
  });

  it('passes promtool check metrics', async () => {
    const { text } = await scrape();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.error, 'promtool is required (Debian package prometheus)').toBeUndefined();
    expect(`${r.stdout}${r.stderr}`.trim(), text).toBe('');
    expect(r.status).toBe(0);
  });
});

/** poll an async condition (Prometheus' HTTP API) */
async function eventually(cond: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(200);
  }
}

describe('a real Prometheus scraping the gateway', () => {
  let prom: ChildProcess | null = null;
  let promDir = '';
  let promPort = 0;
  let promLog = '';

  afterAll(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill('SIGTERM');
      await new Promise((r) => prom!.once('exit', r));
    }
    if (promDir) await rm(promDir, { recursive: true, force: true });
  });

  async function query(q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    expect(body.status, JSON.stringify(body)).toBe('success');
    return body.data.result;
  }

  it('histogram_quantile(0.99) over the scraped buckets agrees with the latencies the upstream produced, and counters with the requests sent', async () => {
    promDir = await mkdtemp(path.join(tmpdir(), 'gatewayctl-prom-'));
    promPort = await freePort();
    await writeFile(
      path.join(promDir, 'prometheus.yml'),
      `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: gateway\n    static_configs: [{ targets: ["127.0.0.1:${statusPort}"] }]\n`,
    );
    prom = spawn('prometheus', [`--config.file=${path.join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    prom.stderr!.on('data', (b: Buffer) => (promLog = (promLog + b.toString()).slice(-4000)));
    const up = async () => (await query('up{job="gateway"}').catch(() => [])).some((r) => r.value[1] === '1');
    await eventually(up, 30_000, () => `Prometheus scraping the gateway (log: ${promLog})`);

    const delays = [120, 250, 250, 250, 250, 250, 250, 250, 250, 400];
    const observed: number[] = [];
    for (const ms of delays) {
      const t0 = performance.now();
      expect((await send({ port, path: `/scraped/slow?ms=${ms}` })).status).toBe(200);
      observed.push((performance.now() - t0) / 1000);
    }
    const countQuery = 'sum(gatewayctl_requests_total{route="scraped",code="200"})';
    await eventually(async () => (await query(countQuery))[0]?.value[1] === String(delays.length), 30_000, () => 'Prometheus to scrape the counted requests');
    expect((await query('gatewayctl_request_duration_seconds_count{route="scraped"}'))[0].value[1]).toBe(String(delays.length));

    const p99 = Number((await query('histogram_quantile(0.99, sum by (le) (gatewayctl_request_duration_seconds_bucket{route="scraped"}))'))[0].value[1]);
    // the slowest request held 400 ms at the upstream: p99 lies in a bucket above 0.3 s, and
    // no higher than the first bound above the slowest latency the client saw
    const bound = BUCKETS.find((b) => b >= Math.max(...observed)) ?? Infinity;
    expect(p99, `p99 ${p99}, client-side latencies ${observed.join(', ')}`).toBeGreaterThan(0.3);
    expect(p99).toBeLessThanOrEqual(bound);
    const p50 = Number((await query('histogram_quantile(0.5, sum by (le) (gatewayctl_request_duration_seconds_bucket{route="scraped"}))'))[0].value[1]);
    expect(p50, `p50 ${p50}`).toBeGreaterThan(0.2); // most requests held 250 ms
    expect(p50).toBeLessThanOrEqual(BUCKETS.find((b) => b >= observed.slice().sort((a, b) => a - b)[5])!);
  }, 90_000);

  it('runs every query of the Grafana dashboard, each naming only families the gateway exports', async () => {
    expect(prom, 'the previous test starts Prometheus').not.toBeNull();
    const exported = new Set([...(await scrape()).text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    expect(exported.has('gatewayctl_gen_ai_usage_tokens_total')).toBe(true);
    const queries = dashboardQueries();
    for (const { panel, expr } of queries) {
      for (const f of familiesIn(expr)) expect(exported.has(f), `${panel}: ${f} is not exported`).toBe(true);
      await query(expr); // status "success": Prometheus parsed and evaluated it
    }
    // and they compute: the p95 panel has a value for the scraped route
    const p95 = queries.find((q) => q.panel === 'p95 latency by route')!.expr.replace('[1m]', '[5m]');
    const rows = await query(p95);
    expect(Number(rows.find((r) => r.metric.route === 'scraped')?.value[1])).toBeGreaterThan(0.2);
  }, 60_000);
});
