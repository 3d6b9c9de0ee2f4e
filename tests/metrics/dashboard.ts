// The Grafana dashboard's PromQL, for the suites that check it (monitoring.test.ts: syntax with
// promtool; metrics-nginx.test.ts: run on a real Prometheus scraping a real gateway).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MONITORING = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'monitoring');
export const DASHBOARD = path.join(MONITORING, 'grafana', 'dashboards', 'gatewayctl.json');

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: { expr: string }[];
}

export const dashboard = () => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string; query: unknown }[] } };

/** Every query of the dashboard with Grafana's variables replaced by what they stand for. */
export function dashboardQueries(): { panel: string; expr: string }[] {
  const out: { panel: string; expr: string }[] = [];
  for (const p of dashboard().panels) {
    for (const t of p.targets ?? []) out.push({ panel: p.title, expr: t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$route', '.*') });
  }
  return out;
}

/** The gatewayctl metric families a PromQL text names (histogram series reduced to the family). */
export function familiesIn(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\bgatewayctl_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')))];
}
