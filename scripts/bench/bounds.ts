// Regression bounds of the CI guard (tests/bench/guard.test.ts): for each gatewayctl row, the
// gateway CPU per request as a ratio to the plain nginx proxy of the same round, as recorded
// on a reference run. The guard fails when a row's median ratio exceeds FACTOR times its
// recorded ratio. FACTOR < 2, so a path whose per-request CPU doubles (relative to plain
// nginx) fails; medians over interleaved rounds and the margin absorb ordinary noise on a
// loaded 2-core machine, where the median ratio of an unchanged row varied by up to ~35%
// between runs. That noise is why the bound is on the whole per-request cost: a doubling of
// only what a path adds over plain nginx (ratio − 1) is caught for the JWT rows, where that
// excess dominates, but not reliably for the cheap rows. Never absolute times.
import type { Report } from './lib.ts';

/** Allowed growth of a row's CPU ratio over the recorded one (< 2, so that doubling fails). */
export const FACTOR = 1.6;

/** The rows the guard runs (besides the baseline): everything gatewayctl generates. */
export const GUARDED = ['gw_plain', 'gw_api_key', 'gw_jwt_hs256', 'gw_jwt_es256_repeat', 'gw_jwt_es256_first', 'gw_model', 'gw_body_hash'];

/** What the guard runs: short, a few seconds per round on a 2-core machine. */
export const GUARD_RUN = { seconds: 0.5, rounds: 5, warmup: 0.3, connections: 32, threads: 2, paired: true } as const;

export interface Bounds {
  comment: string[];
  factor: number;
  recorded: { date: string; client: string; cpus: number; seconds: number; rounds: number; paired: boolean };
  /** Recorded median CPU ratio per row (see limitFor). */
  cpuRatio: Record<string, number>;
}

export function boundsFromReport(r: Report): Bounds {
  const cpuRatio: Record<string, number> = {};
  for (const row of r.rows) if (GUARDED.includes(row.name)) cpuRatio[row.name] = Number(row.cpuRatio.median.toFixed(2));
  return {
    comment: [
      'CPU per request of each gatewayctl row as a ratio to the plain nginx proxy of the same run (median over the rounds of the ratio to the baseline measured next to the row).',
      'tests/bench/guard.test.ts fails when a measured ratio exceeds factor x the recorded one (a doubling fails).',
      'After an intended change of cost (an optimization, or a feature that must cost more), re-record with',
      '  npx tsx scripts/bench.ts --guard --write-bounds tests/bench/bounds.json',
      '  npx tsx scripts/bench.ts --guard --write-bounds tests/bench/bounds.json --merge   # again: keeps the higher ratio',
      '(the guard\'s own short run, on the CI-sized machine; keeping the highest of two runs gives headroom)',
      'and commit the file with the reason in the message.',
    ],
    factor: FACTOR,
    recorded: { date: r.date.slice(0, 10), client: r.client, cpus: r.cpus, seconds: r.seconds, rounds: r.rounds, paired: r.paired },
    cpuRatio,
  };
}

/** Highest CPU ratio the guard accepts for a row recorded at `recorded`. */
export function limitFor(recorded: number, b: Pick<Bounds, 'factor'>): number {
  return recorded * b.factor;
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
    const limit = limitFor(recorded, b);
    if (row.cpuRatio.median > limit)
      out.push(`${name}: CPU ratio ${row.cpuRatio.median.toFixed(2)} to the nginx baseline exceeds ${limit.toFixed(2)} (recorded ${recorded})`);
  }
  return out;
}
