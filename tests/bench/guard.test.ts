// Performance regression guard: a short run of scripts/bench.ts's gatewayctl scenarios next
// to the hand-written nginx proxy baseline, in one run through real nginx. What is compared
// is each row's gateway CPU per request as a ratio to that baseline (the median over rounds of
// the ratio to a baseline measured right next to the row), against the ratios recorded in tests/bench/bounds.json times a generous factor —
// never absolute times, so a slow or loaded machine slows both sides alike. A change that
// doubles a path's per-request cost fails here. To re-record after an intended change, see
// the comment in bounds.json.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GUARD_RUN, GUARDED, violations, type Bounds } from '../../scripts/bench/bounds.ts';
import { BASELINE, runBench } from '../../scripts/bench/lib.ts';

const bounds = JSON.parse(readFileSync(new URL('./bounds.json', import.meta.url), 'utf8')) as Bounds;

describe('per-request cost relative to plain nginx', () => {
  it('every gatewayctl path stays within its recorded CPU ratio to the in-run nginx baseline', async () => {
    // the load generator the bounds were recorded with (wrk: .ci/run installs it)
    const report = await runBench({ ...GUARD_RUN, only: GUARDED, client: bounds.recorded.client as 'wrk' | 'node' });
    // every guarded row was measured, and each has a bound
    expect(report.rows.map((r) => r.name).sort()).toEqual([BASELINE, ...GUARDED].sort());
    expect(Object.keys(bounds.cpuRatio).sort()).toEqual([...GUARDED].sort());
    const table = report.rows.map((r) => `${r.name}: ${r.cpuRatio.median.toFixed(2)} (${r.cpuUs.median.toFixed(1)} µs/req)`).join('\n');
    expect(violations(report, bounds), `measured CPU ratios:\n${table}`).toEqual([]);
    // the user + system split (clock ticks) adds up to the scheduler's CPU time (ns) over the
    // row's rounds, within the ticks' resolution: each round's reading is to 10 ms, and the
    // kernel scales ticks to the scheduler's time only at each reading, so a round can be off
    // by about two ticks; beyond that, 10%. It is what README's table reports next to it.
    for (const r of report.rows) {
      expect(r.userUs.median, r.name).toBeGreaterThan(0);
      const slack = 0.1 * r.cpuTotalUs + report.rounds * 2 * 10_000;
      expect(Math.abs(r.ticksTotalUs - r.cpuTotalUs), `${r.name}: user + sys ${(r.ticksTotalUs / 1e3).toFixed(0)} ms against ${(r.cpuTotalUs / 1e3).toFixed(0)} ms of CPU over ${report.rounds} rounds`).toBeLessThan(slack);
    }
  }, 180_000);

  // --solo (README, "Performance"): each gatewayctl row on a gateway built with only its route,
  // as a deployment doing one thing; the same load and the same pre-flight (every row answers 200)
  it('--solo measures each gatewayctl row on a gateway of its own route', async () => {
    // (the two ES256 rows share their route's gateway)
    const rows = ['gw_plain', 'gw_api_key', 'gw_jwt_es256_repeat', 'gw_jwt_es256_first'];
    const report = await runBench({ seconds: 0.3, rounds: 1, warmup: 0.2, connections: 8, threads: 1, solo: true, only: rows });
    expect(report.solo).toBe(true);
    expect(report.rows.map((r) => r.name).sort()).toEqual([BASELINE, ...rows].sort());
    for (const r of report.rows) expect(r.requests, r.name).toBeGreaterThan(0);
  }, 120_000);
});
