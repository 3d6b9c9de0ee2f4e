// The counting log (src/features/metrics, njs/lib/metrics.ts metricsDrain): a route no feature
// needs the log-phase call on is counted from one file per worker, which each worker counts
// every 250 ms. Through real nginx with two workers: counts stay exact across a reload (the
// old workers' lines are counted by them or, once they have exited, by a new worker), also
// under concurrent load with a reload in the middle; a file left by a process that has exited
// is counted once and removed, so is a claim left by a claimer that has exited, and the file
// of a process that still runs is never touched.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
  worker_processes: 2
  status: { listen: "127.0.0.1:\${PORT_STATUS}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  app: { servers: ["\${UPSTREAM}"] }
routes:
  - { name: plain, match: { prefix: /plain/ }, upstream: app, strip_prefix: true }
metrics: {}
`;

const t = echoGatewayForSuite(path.join(HERE, 'counting-log.gateway.yaml'), yaml);

const samples = async (): Promise<Map<string, number>> => (await scrapeSamples(t.statusPort)).values;

const requests = (v: Map<string, number>, code: number): number =>
  v.get(`gatewayctl_requests_total{route="plain",method="GET",code="${code}",status_class="${String(code)[0]}xx",upstream="app"}`) ?? 0;

/** the pid of a process that has exited */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  expect(r.status).toBe(0);
  return r.pid;
}

/** A counting-log line as nginx writes it for this gateway (default bounds, no auth). */
const line = (code: number): string => `r|plain|GET|${code}|app;0.002;0.001;90;180;${code};;;-;-;-;;${code};${t.upstream.address}\n`;

describe('the counting log through real nginx (two workers)', () => {
  it('counts every request exactly once across a reload', async () => {
    await withErrorLog(t.g.gw, async () => {
      const before = requests(await samples(), 200);
      for (let i = 0; i < 40; i++) expect((await send({ port: t.port, path: '/plain/a' })).status).toBe(200);
      await t.g.gw.reload();
      for (let i = 0; i < 30; i++) expect((await send({ port: t.port, path: '/plain/b' })).status).toBe(200);
      // the old workers' last lines are counted once they have exited (a new worker claims them)
      let n = requests(await samples(), 200) - before;
      for (let i = 0; i < 20 && n < 70; i++) {
        await sleep(250);
        n = requests(await samples(), 200) - before;
      }
      expect(n).toBe(70);
      // and never twice
      await sleep(1000);
      const v = await samples();
      expect(requests(v, 200) - before).toBe(70);
      expect(v.get('gatewayctl_metrics_errors_total')).toBe(0);
    });
  });

  it('counts exactly under concurrent load on both workers, a reload in the middle', async () => {
    await withErrorLog(t.g.gw, async () => {
      const before = requests(await samples(), 200);
      // 20 clients at once, 1,200 requests: both workers write while their counts run
      const total = 1200;
      let sent = 0;
      let reloaded: Promise<void> | null = null;
      const client = async () => {
        while (sent < total) {
          sent++;
          if (sent === total / 2) reloaded = t.g.gw.reload();
          expect((await send({ port: t.port, path: `/plain/c${sent % 7}` })).status).toBe(200);
        }
      };
      await Promise.all(Array.from({ length: 20 }, client));
      await reloaded;
      let n = requests(await samples(), 200) - before;
      for (let i = 0; i < 20 && n < total; i++) {
        await sleep(250);
        n = requests(await samples(), 200) - before;
      }
      expect(n).toBe(total);
      await sleep(1000);
      const v = await samples();
      expect(requests(v, 200) - before).toBe(total);
      expect(v.get('gatewayctl_request_duration_seconds_count{route="plain"}')).toBe(requests(v, 200));
      expect(v.get('gatewayctl_metrics_errors_total')).toBe(0);
    });
  });

  it('counts the file of a process that has exited once and removes it; leaves a running process\'s file alone', async () => {
    const dir = path.join(t.g.gw.prefix, 'temp', 'metrics');
    const exited = deadPid();
    const claimer = deadPid();
    const orphan = path.join(dir, `count.${exited}.log`);
    const claim = path.join(dir, `count.${exited + 100000}.log.${claimer}`);
    // this test runner runs: its "file" is a live writer's, never read
    const live = path.join(dir, `count.${process.pid}.log`);
    try {
      writeFileSync(orphan, line(297).repeat(3));
      writeFileSync(claim, line(298).repeat(2));
      writeFileSync(live, line(299));
      // a few counting rounds (every 250 ms, js_periodic: a scrape counts nothing); longer on a
      // loaded machine, where the workers' rounds come late: the counts are read once both files
      // were taken, or after 5 s
      for (let i = 0; i < 25 && (existsSync(orphan) || existsSync(claim)); i++) await sleep(200);
      await sleep(300);
      const v = await samples();
      expect(requests(v, 297)).toBe(3);
      expect(requests(v, 298)).toBe(2);
      expect(requests(v, 299)).toBe(0);
      expect(existsSync(orphan)).toBe(false);
      expect(readdirSync(dir).filter((f) => f.includes(`.${exited}.`) || f.endsWith(`.${claimer}`))).toEqual([]);
      expect(existsSync(live)).toBe(true);
      // counted once: another round of every worker adds nothing
      await sleep(600);
      const again = await samples();
      expect(requests(again, 297)).toBe(3);
      expect(requests(again, 298)).toBe(2);
    } finally {
      rmSync(live, { force: true });
    }
  });
});
