// Regression bounds of the CI guard (tests/bench/guard.test.ts): for each gatewayctl row, the
// gateway CPU per request as a ratio to the plain nginx proxy of the same round, as recorded
// on a reference run. The guard fails when a row's median ratio exceeds FACTOR times its
// recorded ratio — a doubling of a path's per-request cost is caught, ordinary noise on a
// loaded machine is not. Never absolute times.
import type { Report } from './lib.ts';

/** Allowed growth of a row's CPU ratio over its recorded ratio (< 2, so that doubling fails). */
export const FACTOR = 1.6;

/** The rows the guard runs (besides the baseline): everything gatewayctl generates. */
export const GUARDED = ['gw_plain', 'gw_api_key', 'gw_jwt_hs256', 'gw_jwt_es256_repeat', 'gw_jwt_es256_first', 'gw_model', 'gw_body_hash'];

/** What the guard runs: short, a few seconds per round on a 2-core machine. */
export const GUARD_RUN = { seconds: 0.5, rounds: 3, warmup: 0.3, connections: 32, threads: 2 } as const;

export interface Bounds {
  comment: string[];
  factor: number;
  recorded: { date: string; client: string; cpus: number; seconds: number; rounds: number };
  /** Recorded median CPU ratio per row (the bound is factor x this). */
  cpuRatio: Record<string, number>;
}

export function boundsFromReport(r: Report): Bounds {
  const cpuRatio: Record<string, number> = {};
  for (const row of r.rows) if (GUARDED.includes(row.name)) cpuRatio[row.name] = Number(row.cpuRatio.median.toFixed(2));
  return {
    comment: [
      'CPU per request of each gatewayctl row as a ratio to the plain nginx proxy of the same run (medians).',
      `tests/bench/guard.test.ts fails when a measured ratio exceeds factor x the recorded one.`,
      'After an intended change of cost (an optimization, or a feature that must cost more), re-record with',
      '  npx tsx scripts/bench.ts --guard --write-bounds tests/bench/bounds.json',
      '(the guard\'s own short run; repeat it a few times and keep the highest ratios for headroom)',
      'and commit the file with the reason in the message.',
    ],
    factor: FACTOR,
    recorded: { date: r.date.slice(0, 10), client: r.client, cpus: r.cpus, seconds: r.seconds, rounds: r.rounds },
    cpuRatio,
  };
}

/** Human-readable violations (empty when every guarded row is within its bound). */
export function violations(r: Report, b: Bounds): string[] {
  const out: string[] = [];
  for (const [name, recorded] of Object.entries(b.cpuRatio)) {
    const row = r.rows.find((x) => x.name === name);
    if (!row) {
      out.push(`${name}: not measured`);
      continue;
    }
    const limit = recorded * b.factor;
    if (row.cpuRatio.median > limit)
      out.push(`${name}: CPU ratio ${row.cpuRatio.median.toFixed(2)} to the nginx baseline exceeds ${limit.toFixed(2)} (recorded ${recorded} x ${b.factor})`);
  }
  return out;
}
