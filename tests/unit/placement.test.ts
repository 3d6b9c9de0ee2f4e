// The pure parts of model placement (src/routing/placement.ts): the $request_time comparison the
// fallback deadline is rendered as (checked against numbers, exhaustively near the edges), the
// chain of a model, and its statuses; one breaker record per server across upstreams (the
// record map the health preload carries) and warning GW465 where there cannot be one.
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { atLeastMsRegex, deadlineMs, fallbackStatuses } from '../../src/routing/placement.ts';
import type { ModelEntry } from '../../src/model/types.ts';

/** nginx's $request_time: seconds with three decimals */
const requestTime = (ms: number) => `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;

describe('fallback deadline as a regex over $request_time', () => {
  it('matches exactly the times at least the deadline', () => {
    const deadlines = [1, 9, 10, 99, 100, 999, 1000, 1001, 1500, 1999, 2000, 9999, 10000, 20000, 59999, 60000, 123456, 3600000];
    for (const d of deadlines) {
      const re = new RegExp(atLeastMsRegex(d));
      const samples = new Set<number>([0, 1, 5, 999, 1000, 1001, 99999, 1000000, 10_000_000]);
      for (let x = Math.max(0, d - 1200); x <= d + 1200; x++) samples.add(x);
      for (const x of samples) expect(re.test(requestTime(x)), `deadline ${d} ms, $request_time ${requestTime(x)}`).toBe(x >= d);
    }
  });

  it('reads ms, s and m', () => {
    expect([deadlineMs('1500ms'), deadlineMs('30s'), deadlineMs('2m')]).toEqual([1500, 30000, 120000]);
  });
});

describe('fallback statuses', () => {
  const entry = (on: string[] | null): ModelEntry => ({
    id: 'm',
    upstream: 'a',
    pools: [{ upstream: 'a', weight: null }],
    fallback: on === null ? null : { to: [], on, deadline: null, at: { file: 'g.yaml', line: 1, col: 1, path: 'models[0]' } },
    ownedBy: 'x',
    created: 0,
    at: { file: 'g.yaml', line: 1, col: 1, path: 'models[0]' },
  });
  it('error is 502 and timeout 504, once each; the default is error and timeout', () => {
    expect(fallbackStatuses(entry(null))).toEqual([502, 504]);
    expect(fallbackStatuses(entry(['429', 'error', '502', '503']))).toEqual([429, 502, 503]);
  });
});

const SHARED = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  a:
    servers: [10.0.0.1:8000, 10.0.0.9:8000]
    circuit_breaker: { failures: 3, on: [502, 503] }
  b:
    servers: [10.0.0.9:8000, 10.0.0.2:8000]
    circuit_breaker: { failures: 3, on: [503, 502] }
  c:
    servers: [10.0.0.3:8000, 10.0.0.9:8000, 10.0.0.1:8000]
    circuit_breaker: { failures: 3, on: [502, 503] }
  other:
    servers: [10.0.0.9:8000]
    circuit_breaker: { failures: 5 }
  plain:
    servers: [10.0.0.9:8000]
  alone:
    servers: [10.0.0.7:8000]
    circuit_breaker: { failures: 3, on: [502, 503] }
models:
  - id: m
    pools: [a, b]
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
`;

interface PreloadUpstream {
  recs: string[];
  shared: string[][];
}

describe('one breaker record per server across upstreams (the health preload)', () => {
  it('a server listed with the same circuit_breaker points at the record of the first upstream listing it', () => {
    const r = compile('gateway.yaml', { text: SHARED, env: {} });
    expect(r.diagnostics.map(formatDiagnostic).filter((x) => x.includes('GW465'))).toEqual([]); // a and b share
    const ups = (JSON.parse(r.files!['njs/health.json']) as { upstreams: Record<string, PreloadUpstream> }).upstreams;
    // a owns the records of its servers; b's first server and c's second are a's second (same
    // settings, `on` in any order); c's third is a's first
    expect(ups.a).toEqual({ ...ups.a, recs: ['', ''], shared: [['c'], ['b', 'c']] });
    expect(ups.b).toEqual({ ...ups.b, recs: ['a|1', ''], shared: [['a', 'c'], []] });
    expect(ups.c).toEqual({ ...ups.c, recs: ['', 'a|1', 'a|0'], shared: [[], ['a', 'b'], ['a']] });
    // another breaker: its own record; no breaker, or nothing shared: nothing to map (the
    // preload object carries no map for them)
    expect(ups.other).not.toHaveProperty('recs');
    expect(ups.other).not.toHaveProperty('shared');
    expect(ups.alone).not.toHaveProperty('recs');
    expect(ups.plain).toBeUndefined();
  });
});

describe('GW465: a server in two upstreams of a chain that cannot share its breaker record', () => {
  const warnings = (text: string) =>
    compile('gateway.yaml', { text, env: {} })
      .diagnostics.map(formatDiagnostic)
      .filter((x) => x.includes('GW465'));
  it('no warning with the same circuit_breaker in both', () => {
    expect(warnings(SHARED)).toEqual([]);
  });
  it('breaker settings that differ: warned, saying which and what to do', () => {
    expect(warnings(SHARED.replace('pools: [a, b]', 'pools: [a, other]'))).toEqual([
      'gateway.yaml:25:12 warning GW465 models[0].pools: server 10.0.0.9:8000 is in upstreams a and other, which cannot share its failure record: their circuit_breaker settings differ (a: failures 3, window 10000ms, open_for 30000ms, half_open_requests 1, on [502, 503]; other: failures 5, window 10000ms, open_for 30000ms, half_open_requests 1, on [502, 503, 504]); give each of them the same circuit_breaker to share one breaker record, so a failure seen through one takes the server out of all (docs/routing.md, Placement and fallbacks)',
    ]);
  });
  it('an upstream without a breaker: warned (nginx keeps its max_fails per upstream block); the ones that share are named', () => {
    expect(warnings(SHARED.replace('pools: [a, b]', 'pools: [a, b, plain]'))).toEqual([
      'gateway.yaml:25:12 warning GW465 models[0].pools: server 10.0.0.9:8000 is in upstreams a, b and plain, which cannot share its failure record: plain has no circuit_breaker (nginx keeps its own max_fails record per upstream block); a and b share one breaker record; give each of them the same circuit_breaker to share one breaker record, so a failure seen through one takes the server out of all (docs/routing.md, Placement and fallbacks)',
    ]);
  });
});
