// The guard's decision rule on given reports (no load, no timing): a row within FACTOR of its
// recorded ratio passes, a doubled one fails, a missing one fails, and bounds.json covers
// exactly the rows the guard runs.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { boundsFromReport, FACTOR, GUARDED, violations, type Bounds } from '../../scripts/bench/bounds.ts';
import type { Report, Row, Spread } from '../../scripts/bench/lib.ts';

const at = (x: number): Spread => ({ min: x, median: x, max: x });
const row = (name: string, ratio: number): Row => ({
  name,
  label: name,
  target: 'product',
  cpuUs: at(10 * ratio),
  userUs: at(4 * ratio),
  sysUs: at(6 * ratio),
  cpuTotalUs: 10_000 * ratio,
  ticksTotalUs: 10_000 * ratio,
  rps: at(1000 / ratio),
  cpuRatio: at(ratio),
  rpsRatio: at(1 / ratio),
  cpuRatioOfMedians: ratio,
  requests: 1000,
});
const report = (ratios: Record<string, number>): Report => ({
  client: 'wrk',
  seconds: 0.5,
  rounds: 5,
  paired: true,
  solo: false,
  connections: 32,
  threads: 2,
  cpus: 2,
  date: '2026-12-01T00:00:00.000Z',
  rows: [row('nginx_proxy', 1), ...Object.entries(ratios).map(([n, r]) => row(n, r))],
});

describe('benchmark guard bounds', () => {
  const recorded = report({ gw_api_key: 2.5, gw_jwt_hs256: 5 });
  const bounds = boundsFromReport(recorded);

  it('records the median ratio of each guarded row with the factor', () => {
    expect(bounds.cpuRatio).toEqual({ gw_api_key: 2.5, gw_jwt_hs256: 5 });
    expect(bounds.factor).toBe(FACTOR);
    expect(FACTOR).toBeLessThan(2);
  });

  it('passes the recorded run and noise below the factor', () => {
    expect(violations(recorded, bounds)).toEqual([]);
    expect(violations(report({ gw_api_key: 2.5 * 1.5, gw_jwt_hs256: 5 * 0.8 }), bounds)).toEqual([]);
  });

  it('fails a row whose cost doubled, naming it, and a row that was not measured', () => {
    const v = violations(report({ gw_api_key: 5, gw_jwt_hs256: 5 }), bounds);
    expect(v).toHaveLength(1);
    expect(v[0]).toMatch(/^gw_api_key: CPU ratio 5\.00 .* exceeds 4\.00/);
    expect(violations(report({ gw_api_key: 2.5 }), bounds)).toEqual(['gw_jwt_hs256: not measured']);
  });

  it('the committed bounds cover exactly the guarded rows', () => {
    const committed = JSON.parse(readFileSync(new URL('./bounds.json', import.meta.url), 'utf8')) as Bounds;
    expect(Object.keys(committed.cpuRatio).sort()).toEqual([...GUARDED].sort());
    expect(committed.factor).toBe(FACTOR);
    for (const v of Object.values(committed.cpuRatio)) expect(v).toBeGreaterThan(0);
  });
});
