// The series budget through real nginx: with metrics.max_series: 3, the fourth and fifth label
// sets requests create are refused and counted as overflow, existing series keep counting, and
// the route's histogram still holds every request. With `global.access_log: false` the
// metrics log still runs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { echoGatewayForSuite } from '../support/gateway.ts';
import { withErrorLog } from '../support/nginx.ts';
import { scrapeSamples, send, sleep } from '../support/http.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const yaml = `
version: 1
global:
  worker_processes: 1
  access_log: false # the metrics log still runs (no \`access_log off\` beside it)
  status: { listen: "127.0.0.1:\${PORT_STATUS}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  app:
    servers: ["\${UPSTREAM}"]
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: app
    strip_prefix: true
metrics:
  max_series: 3
`;

const t = echoGatewayForSuite(path.join(HERE, 'budget.gateway.yaml'), yaml);

const values = async (): Promise<Map<string, number>> => (await scrapeSamples(t.statusPort)).values;

describe('metrics series budget', () => {
  it('refuses label sets beyond max_series and counts them as overflow', async () => {
    await withErrorLog(t.g.gw, async () => {
      const sent: [string, string, number][] = [
        ['GET', '/a/x', 200], // series 1
        ['GET', '/a/status/404', 404], // series 2
        ['GET', '/a/status/500', 500], // series 3
        ['POST', '/a/x', 200], // over budget
        ['GET', '/a/status/502', 502], // over budget
        ['GET', '/a/x', 200], // an existing series keeps counting
      ];
      for (const [method, p, status] of sent) expect((await send({ port: t.port, method, path: p })).status).toBe(status);
      let v = await values();
      for (let i = 0; i < 50 && v.get('gatewayctl_request_duration_seconds_count{route="a"}') !== sent.length; i++) {
        await sleep(100);
        v = await values();
      }
      const series = [...v.entries()].filter(([k]) => k.startsWith('gatewayctl_requests_total{'));
      expect(series.map(([k, n]) => `${k} ${n}`).sort()).toEqual([
        'gatewayctl_requests_total{route="a",method="GET",code="200",status_class="2xx",upstream="app"} 2',
        'gatewayctl_requests_total{route="a",method="GET",code="404",status_class="4xx",upstream="app"} 1',
        'gatewayctl_requests_total{route="a",method="GET",code="500",status_class="5xx",upstream="app"} 1',
      ]);
      expect(v.get('gatewayctl_metrics_series')).toBe(3);
      expect(v.get('gatewayctl_metrics_series_limit')).toBe(3);
      // 2 request label sets, and the passive peer-failure series of the 500 and the 502
      // (a budgeted family too) found the budget spent
      expect(v.get('gatewayctl_metrics_overflow_total')).toBe(4);
      expect([...v.keys()].filter((k) => k.startsWith('gatewayctl_upstream_peer_failures_total{'))).toEqual([]);
      expect(v.get('gatewayctl_request_duration_seconds_count{route="a"}')).toBe(sent.length);

      // an admitted label set keeps counting when its latency reaches a bucket it had not (the
      // request key is folded with the bucket indexes; the budget counts label sets)
      expect((await send({ port: t.port, path: '/a/slow?ms=120' })).status).toBe(200);
      for (let i = 0; i < 50 && v.get('gatewayctl_request_duration_seconds_count{route="a"}') !== sent.length + 1; i++) {
        await sleep(100);
        v = await values();
      }
      expect(v.get('gatewayctl_requests_total{route="a",method="GET",code="200",status_class="2xx",upstream="app"}')).toBe(3);
      expect(v.get('gatewayctl_request_duration_seconds_bucket{route="a",le="0.1"}')).toBe(sent.length);
      expect(v.get('gatewayctl_metrics_series')).toBe(3);
      expect(v.get('gatewayctl_metrics_overflow_total')).toBe(4);
    });
  });

  it('keeps the counters across a reload (nginx reuses the shared dict zone)', async () => {
    await withErrorLog(t.g.gw, async () => {
      const before = await values();
      await t.g.gw.reload();
      const after = await values();
      expect(after.get('gatewayctl_request_duration_seconds_count{route="a"}')).toBe(before.get('gatewayctl_request_duration_seconds_count{route="a"}'));
      expect(after.get('gatewayctl_metrics_overflow_total')).toBe(4);
      expect(after.get('gatewayctl_metrics_series')).toBe(3);
    });
  });
});
