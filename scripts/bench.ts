// Per-request cost of the gateway next to hand-written nginx, in one run (prints numbers;
// the CI guard is tests/bench/guard.test.ts). See scripts/bench/lib.ts for what runs and
// README.md "Performance" for what the rows mean.
//
//   npx tsx scripts/bench.ts [--seconds 3] [--rounds 3] [--warmup 1] [--connections 32]
//        [--threads 2] [--client auto|wrk|node] [--only name,name] [--json] [--quiet]
//        [--guard] [--write-bounds tests/bench/bounds.json]
import { writeFileSync } from 'node:fs';
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
  client: (val('--client') as 'auto' | 'wrk' | 'node' | undefined) ?? 'auto',
  only: (val('--only')?.split(',') ?? (guard ? GUARDED : undefined))?.filter((n) => n && n !== BASELINE),
  log: quiet ? undefined : (l) => process.stderr.write(`${l}\n`),
});
if (json) console.log(JSON.stringify(report, null, 2));
else console.log(formatTable(report));
const boundsFile = val('--write-bounds');
if (boundsFile) {
  writeFileSync(boundsFile, JSON.stringify(boundsFromReport(report), null, 2) + '\n');
  process.stderr.write(`wrote ${boundsFile}\n`);
}
