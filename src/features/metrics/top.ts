// `gatewayctl top`, the pure part: parse two scrapes of /metrics (Prometheus text format), and
// compute what happened between them — requests and req/s, error ratio, p50/p95/p99 per route
// (Prometheus' histogram_quantile over the bucket increases), cache hit rate, LLM tokens/s per
// model — and render it as a text table. No I/O here (src/commands/top.ts scrapes and prints).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One scrape: its samples and when it was taken (ms). */
export interface Snapshot {
  at: number;
  samples: Sample[];
}

function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const m of s.matchAll(re)) out[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  return out;
}

/** The samples of a text exposition (comments and blank lines skipped). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    const value = Number(line.slice(sp + 1));
    if (Number.isNaN(value)) continue;
    if (brace >= 0 && brace < sp) {
      const close = line.lastIndexOf('}', sp);
      out.push({ name: line.slice(0, brace), labels: parseLabels(line.slice(brace + 1, close)), value });
    } else {
      out.push({ name: line.slice(0, sp), labels: {}, value });
    }
  }
  return out;
}

const key = (s: Sample) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;

/** Increase of every series from `a` to `b` (a counter reset counts from zero, like rate()). */
function increases(a: Snapshot, b: Snapshot): Sample[] {
  const before = new Map(a.samples.map((s) => [key(s), s.value]));
  return b.samples.map((s) => {
    const old = before.get(key(s)) ?? 0;
    return { ...s, value: s.value >= old ? s.value - old : s.value };
  });
}

/** histogram_quantile over cumulative buckets [le, count] (le may be Infinity), as Prometheus computes it. */
export function quantile(q: number, buckets: [number, number][]): number | null {
  const b = [...buckets].sort((x, y) => x[0] - y[0]);
  if (!b.length || b[b.length - 1]![0] !== Infinity) return null;
  const total = b[b.length - 1]![1];
  if (total <= 0) return null;
  const rank = q * total;
  let i = b.findIndex(([, c]) => c >= rank);
  if (i < 0) i = b.length - 1;
  if (b[i]![0] === Infinity) return b.length > 1 ? b[b.length - 2]![0] : null;
  const lower = i === 0 ? 0 : b[i - 1]![0];
  const below = i === 0 ? 0 : b[i - 1]![1];
  const inBucket = b[i]![1] - below;
  if (inBucket <= 0) return b[i]![0];
  return lower + (b[i]![0] - lower) * ((rank - below) / inBucket);
}

export interface RouteView {
  route: string;
  requests: number;
  rps: number;
  errors: number; // 5xx answers
  errorRatio: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface ModelView {
  model: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  tokensPerSecond: number;
}

export interface TopView {
  seconds: number;
  requests: number;
  rps: number;
  errorRatio: number | null;
  cacheHitRatio: number | null;
  cache: { zone: string; hits: number; total: number; hitRatio: number | null }[];
  routes: RouteView[];
  models: ModelView[];
  inFlight: number | null;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const ratio = (a: number, b: number) => (b > 0 ? a / b : null);

/** What happened between two scrapes. */
export function summarize(a: Snapshot, b: Snapshot): TopView {
  const seconds = Math.max((b.at - a.at) / 1000, 1e-9);
  const inc = increases(a, b);
  const of = (name: string) => inc.filter((s) => s.name === name);
  const req = of('gatewayctl_requests_total');
  const routeNames = [...new Set([...req.map((s) => s.labels.route!), ...of('gatewayctl_request_duration_seconds_bucket').map((s) => s.labels.route!)])].sort();
  const routes: RouteView[] = routeNames.map((route) => {
    const mine = req.filter((s) => s.labels.route === route);
    const requests = sum(mine.map((s) => s.value));
    const errors = sum(mine.filter((s) => s.labels.status_class === '5xx').map((s) => s.value));
    const buckets = of('gatewayctl_request_duration_seconds_bucket')
      .filter((s) => s.labels.route === route)
      .map((s): [number, number] => [s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value]);
    return { route, requests, rps: requests / seconds, errors, errorRatio: ratio(errors, requests), p50: quantile(0.5, buckets), p95: quantile(0.95, buckets), p99: quantile(0.99, buckets) };
  });
  const active = routes.filter((r) => r.requests > 0);
  const requests = sum(req.map((s) => s.value));
  const errors = sum(req.filter((s) => s.labels.status_class === '5xx').map((s) => s.value));
  const cacheSamples = of('gatewayctl_cache_requests_total');
  const zones = [...new Set(cacheSamples.map((s) => s.labels.zone!))].sort();
  const cache = zones.map((zone) => {
    const z = cacheSamples.filter((s) => s.labels.zone === zone);
    const hits = sum(z.filter((s) => s.labels.result === 'hit').map((s) => s.value));
    const total = sum(z.map((s) => s.value));
    return { zone, hits, total, hitRatio: ratio(hits, total) };
  });
  const tokens = of('gatewayctl_gen_ai_usage_tokens_total');
  const llm = of('gatewayctl_gen_ai_requests_total');
  const modelNames = [...new Set([...tokens.map((s) => s.labels.model!), ...llm.map((s) => s.labels.model!)])].sort();
  const models = modelNames
    .map((model) => {
      const input = sum(tokens.filter((s) => s.labels.model === model && s.labels.type === 'input').map((s) => s.value));
      const output = sum(tokens.filter((s) => s.labels.model === model && s.labels.type === 'output').map((s) => s.value));
      return { model, requests: sum(llm.filter((s) => s.labels.model === model).map((s) => s.value)), inputTokens: input, outputTokens: output, tokensPerSecond: (input + output) / seconds };
    })
    .filter((m) => m.requests > 0 || m.inputTokens + m.outputTokens > 0);
  const writing = b.samples.find((s) => s.name === 'gatewayctl_connections' && s.labels.state === 'writing');
  return {
    seconds,
    requests,
    rps: requests / seconds,
    errorRatio: ratio(errors, requests),
    cacheHitRatio: ratio(sum(cache.map((c) => c.hits)), sum(cache.map((c) => c.total))),
    cache,
    routes: active.length ? active : routes.filter((r) => r.route !== '-'),
    models,
    // the scrape itself is one of the writing connections
    inFlight: writing ? Math.max(0, writing.value - 1) : null,
  };
}

const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
const dur = (x: number | null) => (x === null ? '-' : x < 1 ? `${(x * 1000).toFixed(0)}ms` : `${x.toFixed(2)}s`);
const num = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), ...rows.map(fmt)];
}

/** The text view (no escape sequences). */
export function render(v: TopView, source: string, now: Date): string {
  const out: string[] = [];
  out.push(`gatewayctl top — ${source} — ${now.toISOString().slice(11, 19)} UTC, last ${v.seconds.toFixed(1)} s`);
  out.push(
    `requests ${num(v.rps)}/s   errors (5xx) ${pct(v.errorRatio)}   cache hit ${pct(v.cacheHitRatio)}${v.inFlight === null ? '' : `   in flight ${v.inFlight}`}`,
  );
  out.push('');
  out.push(...table(['ROUTE', 'REQ/S', 'ERR%', 'P50', 'P95', 'P99'], v.routes.map((r) => [r.route, num(r.rps), pct(r.errorRatio), dur(r.p50), dur(r.p95), dur(r.p99)])));
  if (v.cache.length) {
    out.push('');
    out.push(...table(['CACHE ZONE', 'HIT%', 'LOOKUPS'], v.cache.map((c) => [c.zone, pct(c.hitRatio), String(c.total)])));
  }
  if (v.models.length) {
    out.push('');
    out.push(...table(['MODEL', 'REQ', 'IN TOK', 'OUT TOK', 'TOK/S'], v.models.map((m) => [m.model, String(m.requests), String(m.inputTokens), String(m.outputTokens), num(m.tokensPerSecond)])));
  }
  return out.join('\n') + '\n';
}

/** A frame that redraws the terminal in place: cursor home, the view, clear to the end. */
export function frame(text: string): string {
  return `\x1b[H${text.replace(/\n/g, '\x1b[K\n')}\x1b[J`;
}
