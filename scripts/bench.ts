// Per-request cost of the gateway next to hand-written nginx, in one run (prints numbers;
// the CI guard is tests/bench/guard.test.ts). See scripts/bench/lib.ts for what runs and
// README.md "Performance" for what the rows mean.
//
//   npx tsx scripts/bench.ts [--seconds 3] [--rounds 3] [--warmup 1] [--connections 32]
//        [--threads 2] [--client auto|wrk|node] [--only name,name] [--json] [--quiet]
//        [--paired] [--solo] [--no-jwt-cache] [--metrics] [--live-keys] [--guard] [--write-bounds tests/bench/bounds.json [--merge]]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { BASELINE, DEFAULTS, formatTable, runBench, type Report } from './bench/lib.ts';
import { boundsFromReport, GUARD_RUN, GUARDED } from './bench/bounds.ts';

const argv = process.argv.slice(2);
const val = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const num = (name: string, dflt: number) => (val(name) === undefined ? dflt : Number(val(name)));
const json = argv.includes('--json');
// --guard: the short run of the CI guard (its scenarios and durations), e.g. to re-record bounds
const guard = argv.includes('--guard');
const base = guard ? { ...DEFAULTS, ...GUARD_RUN } : DEFAULTS;
const quiet = argv.includes('--quiet') || json;

const report: Report = await runBench({
  seconds: num('--seconds', base.seconds),
  rounds: num('--rounds', base.rounds),
  warmup: num('--warmup', base.warmup),
  connections: num('--connections', base.connections),
  threads: num('--threads', base.threads),
  paired: argv.includes('--paired') || guard,
  client: (val('--client') as 'auto' | 'wrk' | 'node' | undefined) ?? 'auto',
  noJwtCache: argv.includes('--no-jwt-cache'),
  metrics: argv.includes('--metrics'),
  liveKeys: argv.includes('--live-keys'),
  solo: argv.includes('--solo'),
  only: (val('--only')?.split(',') ?? (guard ? GUARDED : undefined))?.filter((n) => n && n !== BASELINE),
  log: quiet ? undefined : (l) => process.stderr.write(`${l}\n`),
});
if (json) console.log(JSON.stringify(report, null, 2));
else console.log(formatTable(report));
const boundsFile = val('--write-bounds');
if (boundsFile) {
  const bounds = boundsFromReport(report);
  // --merge: keep the higher of the recorded and the measured ratio (record over several runs)
  if (argv.includes('--merge') && existsSync(boundsFile)) {
    const old = JSON.parse(readFileSync(boundsFile, 'utf8')) as typeof bounds;
    for (const [k, v] of Object.entries(old.cpuRatio)) if (k in bounds.cpuRatio) bounds.cpuRatio[k] = Math.max(bounds.cpuRatio[k], v);
  }
  writeFileSync(boundsFile, JSON.stringify(bounds, null, 2) + '\n');
  process.stderr.write(`wrote ${boundsFile}\n`);
}
