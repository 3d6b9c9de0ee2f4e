// The monitoring files (monitoring/): the alert rules pass `promtool check rules` and their unit
// tests (`promtool test rules`: each alert fires on the series it is about and not on the
// others), the Prometheus config of the compose profile passes `promtool check config`, and
// every query of the Grafana dashboard is valid PromQL (checked by promtool as a recording
// rule). metrics-nginx.test.ts runs the same queries on a real Prometheus and checks that they
// name only families the gateway exports.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { dashboard, dashboardQueries, familiesIn, MONITORING } from './dashboard.ts';

const PROM = path.join(MONITORING, 'prometheus');

function promtool(args: string[], cwd = PROM): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  expect(r.error, 'promtool is required (Debian package prometheus)').toBeUndefined();
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('alert rules', () => {
  it('pass promtool check rules', () => {
    const r = promtool(['check', 'rules', 'alerts.yml']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain('SUCCESS: 5 rules found');
  });

  it('pass their unit tests (promtool test rules)', () => {
    const r = promtool(['test', 'rules', 'alerts.test.yml']);
    expect(r.status, r.out).toBe(0);
    // every alert of the file is exercised by a test
    const names = [...readFileSync(path.join(PROM, 'alerts.yml'), 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    const tests = readFileSync(path.join(PROM, 'alerts.test.yml'), 'utf8');
    for (const n of names) expect(tests, n).toContain(`alertname: ${n}`);
  });

  it('the compose profile\'s Prometheus config passes promtool check config', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatewayctl-promcfg-'));
    try {
      const cfg = readFileSync(path.join(PROM, 'prometheus.yml'), 'utf8').replace('/etc/prometheus/alerts.yml', path.join(PROM, 'alerts.yml'));
      writeFileSync(path.join(dir, 'prometheus.yml'), cfg);
      const r = promtool(['check', 'config', path.join(dir, 'prometheus.yml')], dir);
      expect(r.status, r.out).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Grafana dashboard', () => {
  it('every query is valid PromQL, and a broken one would be caught', () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(20);
    const dir = mkdtempSync(path.join(tmpdir(), 'gatewayctl-dash-'));
    try {
      const check = (exprs: string[]) => {
        writeFileSync(path.join(dir, 'q.yml'), stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:q${i}`, expr })) }] }));
        return promtool(['check', 'rules', 'q.yml'], dir);
      };
      const r = check(queries.map((q) => q.expr));
      expect(r.status, r.out).toBe(0);
      expect(check(['sum by (route (rate(gatewayctl_requests_total[1m]))']).status).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has the panels the README describes, each on the datasource variable', () => {
    const d = dashboard();
    expect(d.uid).toBe('gatewayctl');
    const titles = d.panels.map((p) => p.title);
    for (const t of ['Requests per second by route', 'Error ratio (5xx) by route', 'p50 latency by route', 'p95 latency by route', 'p99 latency by route', 'Cache hit rate by zone', 'Requests refused by limits', 'Authentication failures by reason', 'Upstream 502/504 ratio', 'Failed tries by peer', 'Peer state', 'Tokens per second by model', 'Time to first token p50 / p95 by model']) {
      expect(titles).toContain(t);
    }
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const text = readFileSync(path.join(MONITORING, 'grafana', 'dashboards', 'gatewayctl.json'), 'utf8');
    expect(text).not.toMatch(/"uid": "(?!\$\{datasource\}|gatewayctl")/); // no data source of one installation
    // the README's two headline queries are the dashboard's, at a fixed range
    const readme = readFileSync(path.join(MONITORING, '..', 'README.md'), 'utf8');
    const p95 = 'histogram_quantile(0.95, sum by (route, le) (rate(gatewayctl_request_duration_seconds_bucket[5m])))';
    const hit = 'sum by (zone) (rate(gatewayctl_cache_requests_total{result="hit"}[5m])) / sum by (zone) (rate(gatewayctl_cache_requests_total[5m]))';
    expect(readme).toContain(p95);
    expect(readme).toContain(hit);
    const exprs = dashboardQueries().map((q) => q.expr.replaceAll('[1m]', '[5m]').replaceAll('{route=~".*"}', ''));
    expect(exprs).toContain(p95);
    expect(exprs).toContain(hit);
    expect(familiesIn(exprs.join('\n')).every((f) => f.startsWith('gatewayctl_'))).toBe(true);
  });
});
