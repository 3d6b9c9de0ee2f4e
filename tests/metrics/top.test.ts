// `gatewayctl top` against a real gateway: the CLI scrapes /metrics every interval and reports
// exactly the requests sent inside a window, per route, with the 5xx ratio, latency
// percentiles consistent with what the upstream held, and the cache hit rate; it redraws in
// place and exits on Ctrl-C. The quantile math is Prometheus' histogram_quantile.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { capture } from '../support/capture.ts';
import { echoGatewayForSuite } from '../support/gateway.ts';
import { withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sleep } from '../support/http.ts';
import { run } from '../../src/commands/top.ts';
import { quantile, parseExposition, summarize, type TopView } from '../../src/features/metrics/top.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(HERE, '..', '..', 'bin', 'gatewayctl.js');

describe('top: the numbers', () => {
  it('quantile() interpolates inside the bucket the rank falls in, like histogram_quantile', () => {
    const b: [number, number][] = [
      [0.1, 50],
      [0.2, 90],
      [Infinity, 100],
    ];
    expect(quantile(0.5, b)).toBeCloseTo(0.1);
    expect(quantile(0.75, b)).toBeCloseTo(0.1 + 0.1 * (25 / 40));
    expect(quantile(0.25, b)).toBeCloseTo(0.05);
    expect(quantile(0.95, b)).toBe(0.2); // in +Inf: the highest finite bound
    expect(quantile(0.5, [[Infinity, 0]])).toBeNull();
  });

  it('counts increases between scrapes and treats a counter reset as a restart from zero', () => {
    const a = { at: 0, samples: parseExposition('gatewayctl_requests_total{route="r",method="GET",code="200",status_class="2xx",upstream="u"} 10\n') };
    const b = { at: 2000, samples: parseExposition('# TYPE x counter\ngatewayctl_requests_total{route="r",method="GET",code="200",status_class="2xx",upstream="u"} 4\ngatewayctl_requests_total{route="r",method="GET",code="502",status_class="5xx",upstream="u"} 1\n') };
    const v = summarize(a, b);
    expect(v.requests).toBe(5);
    expect(v.rps).toBe(2.5);
    expect(v.routes[0]).toMatchObject({ route: 'r', requests: 5, errors: 1, errorRatio: 0.2 });
  });

  it('exits 1 with the reason when the gateway cannot be read', async () => {
    const [port] = await freePorts(1);
    const r = await capture(() => run({ url: `http://127.0.0.1:${port}/metrics`, once: true }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot read http://127.0.0.1:${port}/metrics`);
    expect((await capture(() => run({ interval: '0' }))).code).toBe(2);
  });
});

const yaml = `
version: 1
global:
  worker_processes: 1
  status: { listen: "127.0.0.1:\${PORT_STATUS}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  app:
    servers: ["\${UPSTREAM}"]
caches:
  pages: { size: 1m }
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: app
    strip_prefix: true
  - name: pages
    match: { prefix: /pages/ }
    upstream: app
    cache: { zone: pages, ttl: { "200": 1m } }
metrics:
  buckets: [0.05, 0.1, 0.2, 0.4, 1]
`;

const suite = echoGatewayForSuite(path.join(HERE, 'top.gateway.yaml'), yaml);

/** `gatewayctl top` as a user runs it; its stdout as it comes */
function top(args: string[]): { child: ChildProcessWithoutNullStreams; out: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, 'top', '--url', `http://127.0.0.1:${suite.statusPort}/metrics`, ...args], { stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, exit };
}

async function until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(20);
  }
}

describe('gatewayctl top against a real gateway', () => {
  it('reports exactly the requests of a window: per route, 5xx ratio, percentiles, cache hit rate', async () => {
    await withErrorLog(suite.g.gw, async () => {
      const t = top(['--json', '--interval', '4']);
      try {
        const windows = () =>
          t
            .out()
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as TopView);
        await until(() => windows().length >= 1, 20_000, () => `the first window (${t.out()})`);
        // right after a scrape: this traffic falls in the next window (in parallel, so it
        // takes ~150 ms; windows are contiguous, so counts are summed over them anyway)
        const go = (p: string, status: number) => send({ port: suite.port, path: p }).then((r) => expect(r.status).toBe(status));
        await Promise.all([...Array.from({ length: 6 }, () => go('/api/slow?ms=150', 200)), go('/api/status/500', 500), go('/api/status/500', 500)]);
        for (let i = 0; i < 4; i++) await go('/pages/p', 200); // 1 miss, 3 hits
        const after = () => windows().slice(1);
        await until(() => after().reduce((a, w) => a + w.requests, 0) >= 12, 20_000, () => `the traffic in a window (${t.out()})`);
        await sleep(100);
        expect(after().reduce((a, w) => a + w.requests, 0)).toBe(12);
        const route = (w: TopView, r: string) => w.routes.find((x) => x.route === r);
        expect(after().reduce((a, w) => a + (route(w, 'api')?.requests ?? 0), 0)).toBe(8);
        expect(after().reduce((a, w) => a + (route(w, 'api')?.errors ?? 0), 0)).toBe(2);
        const v = after().find((w) => (route(w, 'api')?.requests ?? 0) === 8)!;
        expect(v, 'the api burst in one window').toBeDefined();
        const api = route(v, 'api')!;
        expect(api).toMatchObject({ requests: 8, errors: 2, errorRatio: 0.25 });
        // 6 of 8 requests held 150 ms: p50 cannot lie below the (0.1, 0.2] bucket; how far above
        // it depends on the machine's load (a busy CI host adds tens of ms), so the upper
        // bounds only exclude a misplaced bucket (the quantile math is checked exactly above)
        expect(api.p50!).toBeGreaterThan(0.1);
        expect(api.p50!).toBeLessThanOrEqual(1);
        expect(api.p99!).toBeGreaterThanOrEqual(api.p50!);
        expect(api.p99!).toBeLessThanOrEqual(2.5);
        const w = after().find((x) => x.cache.length && x.cache[0]!.total === 4)!;
        expect(w.cache).toEqual([{ zone: 'pages', hits: 3, total: 4, hitRatio: 0.75 }]);
        expect(w.cacheHitRatio).toBe(0.75);
      } finally {
        t.child.kill('SIGINT');
        expect(await t.exit).toBe(0);
      }
    });
  }, 60_000);

  it('redraws in place and exits 0 on Ctrl-C, restoring the cursor; --once prints one table', async () => {
    const t = top(['--interval', '0.5']);
    await until(() => (t.out().match(/\x1b\[H/g) ?? []).length >= 2, 20_000, () => `two frames (${JSON.stringify(t.out())})`);
    t.child.kill('SIGINT');
    expect(await t.exit).toBe(0);
    const out = t.out();
    expect(out.startsWith('\x1b[?25l\x1b[2J')).toBe(true);
    expect(out).toMatch(/ROUTE\s+REQ\/S\s+ERR%\s+P50\s+P95\s+P99/);
    expect(out.endsWith('\x1b[?25h\n')).toBe(true);

    const once = top(['--once', '--interval', '0.5']);
    expect(await once.exit).toBe(0);
    expect(once.out()).not.toContain('\x1b[');
    expect(once.out()).toMatch(/^gatewayctl top — http:\/\/127\.0\.0\.1:\d+\/metrics — /);
    expect(once.out()).toMatch(/^api\s/m);
  }, 60_000);
});
