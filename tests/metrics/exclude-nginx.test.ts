// metrics.exclude_routes through real nginx: requests on an excluded route are not counted
// anywhere and the route has no series at all, while the other routes keep counting exactly;
// nginx never runs the log-phase call for them.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { echoGatewayForSuite } from '../support/gateway.ts';
import { withErrorLog } from '../support/nginx.ts';
import { send, sendCounted, sleep } from '../support/http.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

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
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: app
  - name: assets
    match: { prefix: /assets/ }
    upstream: app
    max_body: 1k
metrics:
  exclude_routes: [assets]
`;

const t = echoGatewayForSuite(path.join(HERE, 'exclude.gateway.yaml'), yaml);

const count = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

describe('metrics.exclude_routes', () => {
  it('counts the other routes exactly and the excluded one not at all', async () => {
    await withErrorLog(t.g.gw, async () => {
      for (let i = 0; i < 7; i++) expect((await send({ port: t.port, path: `/api/${i}` })).status).toBe(200);
      for (let i = 0; i < 5; i++) expect((await send({ port: t.port, path: `/assets/${i}` })).status).toBe(200);
      expect((await send({ port: t.port, path: '/assets/x', method: 'DELETE', headers: { 'Content-Length': '0' } })).status).toBe(200);
      // a body over max_body is refused while nginx picks the location, before the route names
      // itself ($gw_route): counted under route "-", as on any route
      expect((await send({ port: t.port, path: '/assets/x', method: 'POST', body: 'x'.repeat(4096), headers: { 'Content-Type': 'text/plain' } })).status).toBe(413);
      let text = '';
      for (let i = 0; i < 40; i++) {
        text = (await sendCounted({ port: t.statusPort, path: '/metrics' })).text;
        if (count(text, /^gatewayctl_requests_total\{route="api",/) === 7) break;
        await sleep(50);
      }
      expect(count(text, /^gatewayctl_requests_total\{route="api",/), text).toBe(7);
      expect(count(text, /^gatewayctl_request_duration_seconds_count\{route="api"\}/)).toBe(7);
      // no series of any family for the excluded route, not even an empty histogram
      expect(text.split('\n').filter((l) => l.includes('route="assets"'))).toEqual([]);
      expect(count(text, /^gatewayctl_requests_total\{/), text.split('\n').filter((l) => l.startsWith('gatewayctl_requests_total{')).join('\n')).toBe(8);
      expect(count(text, /^gatewayctl_requests_total\{route="-",method="POST",code="413",/)).toBe(1);
      const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(lint.error, 'promtool is required (Debian package prometheus)').toBeUndefined();
      expect(`${lint.stdout}${lint.stderr}`.trim(), text).toBe('');
      // the requests were served and logged as usual
      expect(t.g.gw.accessLog().split('\n').filter((l) => l.includes('"route":"assets"'))).toHaveLength(6);
    });
  });
});
