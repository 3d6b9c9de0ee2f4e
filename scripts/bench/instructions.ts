// Instructions per request, counted by valgrind's callgrind in the nginx worker: the same
// figure on a busy machine as on an idle one (CPU-time benchmarks are not), so it shows where a
// path's cost goes and whether a change removed any, function by function.
//
//   npx tsx scripts/bench/instructions.ts [--requests 400] [--only gw_api_key,...] [--top 25] [--solo] [--metrics] [--live-keys] [--no-jwt-cache] [--json]
//
// Each scenario of scripts/bench/lib.ts runs against its nginx (one process, under callgrind):
// warm-up requests, counters zeroed, N requests on one keep-alive connection, counters dumped.
// Prints instructions per request and the ratio to the plain nginx proxy; with --top, the
// functions a scenario spends most in beyond the gatewayctl plain route (self cost). User
// space only: the kernel's share of a request (sockets) is not counted, so these ratios are
// steeper than the CPU-time ratios of scripts/bench.ts.
// --solo: each gatewayctl scenario on a gateway with only its own route (and `plain`), so its
// njs module holds only the handlers that route calls, as in a deployment doing one thing;
// by default all scenarios share one gateway, whose module holds every handler.
// --no-jwt-cache: gateways built with `auth.jwt_cache: false` (every JWT verified in full).
// GATEWAYCTL_NGINX=.runtime-next/bin/nginx counts on the newer runtime (nginx 1.30 + njs 1.0;
// scripts/provision-runtime.sh --next) instead of the project's.
// The guard tests/bench/instructions.test.ts runs the same library (scripts/bench/callgrind.ts).
import { BASELINE } from './lib.ts';
import { countInstructions, selfCosts } from './callgrind.ts';

const argv = process.argv.slice(2);
const val = (n: string) => (argv.indexOf(n) >= 0 ? argv[argv.indexOf(n) + 1] : undefined);
const N = Number(val('--requests') ?? 400);
const TOP = Number(val('--top') ?? 0);
const json = argv.includes('--json');

const { rows } = await countInstructions({ requests: N, only: val('--only')?.split(','), solo: argv.includes('--solo'), metrics: argv.includes('--metrics'), liveKeys: argv.includes('--live-keys'), noJwtCache: argv.includes('--no-jwt-cache'), log: json ? undefined : (l) => process.stderr.write(`${l}\n`) });
if (json) {
  console.log(JSON.stringify(rows.map(({ name, perRequest, ratio }) => ({ name, perRequest: Math.round(perRequest), ratio: Number(ratio.toFixed(3)) })), null, 2));
} else {
  console.log(`instructions per request in the nginx worker (callgrind, user space), ${N} requests on one keep-alive connection`);
  console.log(`${'scenario'.padEnd(22)} ${'instr/req'.padStart(10)} ${'x baseline'.padStart(10)}  label`);
  for (const r of rows) console.log(`${r.name.padEnd(22)} ${String(Math.round(r.perRequest)).padStart(10)} ${r.ratio.toFixed(2).padStart(10)}  ${r.label}`);
}
if (TOP && !json) {
  const plain = rows.find((r) => r.name === 'gw_plain');
  const plainCosts = plain ? selfCosts(plain.file) : new Map<string, number>();
  for (const r of rows) {
    if (r.name === BASELINE || r.name === 'gw_plain' || !r.name.startsWith('gw_')) continue;
    const diff = [...selfCosts(r.file)].map(([fn, c]) => [fn, (c - (plainCosts.get(fn) ?? 0)) / N] as const).sort((a, b) => b[1] - a[1]);
    console.log(`\n${r.name}: functions above the gatewayctl plain route (self instructions/request)`);
    for (const [fn, c] of diff.slice(0, TOP)) console.log(`${String(Math.round(c)).padStart(8)}  ${fn}`);
  }
}
