// Data-driven integration specs: tests/integration/specs/<name>/{gateway.yaml,spec.json}.
//
// gateway.yaml uses ${VAR} placeholders that the compiler's env interpolation fills:
//   PORT_*  free loopback ports for the gateway's listeners (spec.ports, default [PORT_GW])
//   UP_*    ports of the upstreams declared in spec.upstreams
// spec.json:
//   {
//     "description": "…",
//     "ports": ["PORT_GW"],
//     "upstreams": { "UP_A": { "id": "a" },                      // echo upstream (tests/support)
//                    "UP_BAD": { "id": "bad", "status": 502 },   // answers every request with 502
//                    "UP_DEAD": { "dead": true } },              // nothing listening
//     "steps": [ Step, … ]
//   }
// Step (one of):
//   { "name", "request": { "method", "path", "headers", "body", "port": "PORT_GW" },
//     "repeat": N,                       // send it N times (sequentially)
//     "expect": Expect,                  // checked on every response
//     "tally": { "by": "status" | "header:<name>", "counts": { "<value>": n } },
//     "hits": { "UP_A": n | Matcher },   // requests each upstream received during the step
//     "errorLog": { "<regex>": n | Matcher }, // error-log lines matching, after the step
//     "background": "<label>" }          // send without waiting (await it in a later step)
//   { "name", "await": "<label>", "expect": Expect }
//   { "name", "waitHits": { "UP_A": n } } // until the upstream has received n requests in total
//   { "name", "sleepMs": n }              // at most 5000
// Expect:
//   { "status": 200, "closed": true,
//     "headers": { "<name>": "exact" | null (absent) | Matcher },
//     "json": <subset of the JSON body>, "bodyContains": "…",
//     "accessLog": { "<field>": value, … } }   // a JSON access-log line with these fields
// Values are matched exactly after ${…} substitution (ports, UP_*, CONFIG_HASH,
// res.header.<name> = this response's header, req.header.<name> = header sent);
// a Matcher is { "$match": "regex" } | { "$absent": true } | { "$contains": "text" } |
// { "$not": value } | { "$min": n, "$max": n }.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../support/ports.ts';
import { closeAll, deadPort, startEchoUpstream, startFixedStatusUpstream, type EchoUpstream, type FixedStatusUpstream } from '../../support/upstreams.ts';
import { withErrorLog } from '../../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from '../../support/gateway.ts';
import { send, sleep, waitUntil, type HttpResponse } from '../../support/http.ts';

export interface SpecRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  port?: string;
}

export interface Expect {
  status?: number;
  closed?: boolean;
  headers?: Record<string, unknown>;
  json?: unknown;
  bodyContains?: string;
  accessLog?: Record<string, unknown>;
}

export interface Step {
  name: string;
  request?: SpecRequest;
  repeat?: number;
  expect?: Expect;
  tally?: { by: string; counts: Record<string, number> };
  hits?: Record<string, unknown>;
  /** regex → number of error-log lines matching it (total so far), after the step */
  errorLog?: Record<string, unknown>;
  background?: string;
  await?: string;
  waitHits?: Record<string, number>;
  sleepMs?: number;
}

export interface UpstreamSpec {
  id?: string;
  status?: number;
  dead?: boolean;
}

export interface Spec {
  description: string;
  ports?: string[];
  upstreams?: Record<string, UpstreamSpec>;
  steps: Step[];
}

type Counted = { hits: number };

export interface SpecContext {
  dir: string;
  spec: Spec;
  env: Record<string, string>;
  gateway: BuiltGateway;
  upstreams: Map<string, Counted & { close(): Promise<void> }>;
  pending: Map<string, Promise<HttpResponse>>;
  close(): Promise<void>;
}

const STEP_KEYS = ['name', 'request', 'repeat', 'expect', 'tally', 'hits', 'errorLog', 'background', 'await', 'waitHits', 'sleepMs'];
const EXPECT_KEYS = ['status', 'closed', 'headers', 'json', 'bodyContains', 'accessLog'];
const REQUEST_KEYS = ['method', 'path', 'headers', 'body', 'port'];

/** Read spec.json and reject typos: an unknown key would otherwise be an assertion that never runs. */
export function loadSpec(dir: string): Spec {
  const file = path.join(dir, 'spec.json');
  const spec = JSON.parse(readFileSync(file, 'utf8')) as Spec;
  const unknown = (o: object, allowed: string[], where: string) => {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new Error(`${file}: unknown key "${k}" in ${where}`);
  };
  unknown(spec, ['description', 'ports', 'upstreams', 'steps'], 'the spec');
  if (!Array.isArray(spec.steps) || !spec.steps.length) throw new Error(`${file}: no steps`);
  for (const [i, st] of spec.steps.entries()) {
    const where = `steps[${i}] (${st.name})`;
    if (!st.name) throw new Error(`${file}: steps[${i}] has no name`);
    unknown(st, STEP_KEYS, where);
    if (st.expect) unknown(st.expect, EXPECT_KEYS, `${where}.expect`);
    if (st.request) unknown(st.request, REQUEST_KEYS, `${where}.request`);
    if (st.request && !st.background && !st.expect && !st.tally && !st.hits && !st.errorLog) {
      throw new Error(`${file}: ${where} sends a request but checks nothing`);
    }
    if (st.await && !st.expect) throw new Error(`${file}: ${where} awaits a request but checks nothing`);
  }
  return spec;
}

/** Start the spec's upstreams and its gateway. */
export async function startSpec(dir: string): Promise<SpecContext> {
  const spec = loadSpec(dir);
  const env: Record<string, string> = {};
  const upstreams = new Map<string, Counted & { close(): Promise<void> }>();
  const started: (EchoUpstream | FixedStatusUpstream)[] = [];
  try {
    for (const [name, u] of Object.entries(spec.upstreams ?? {})) {
      if (!/^UP_[A-Z0-9_]+$/.test(name)) throw new Error(`${dir}: upstream placeholder ${name} must look like UP_X`);
      if (u.dead) {
        env[name] = String(await deadPort());
        continue;
      }
      const up = u.status ? await startFixedStatusUpstream(u.id ?? name, u.status) : await startEchoUpstream({ id: u.id ?? name });
      started.push(up);
      upstreams.set(name, up);
      env[name] = String(up.port);
    }
    const portNames = spec.ports ?? ['PORT_GW'];
    for (const p of portNames) env[p] = String(await freePort());
    const gateway = await buildAndStart({
      configPath: path.join(dir, 'gateway.yaml'),
      env,
      ports: portNames.map((p) => Number(env[p])),
    });
    env.CONFIG_HASH = gateway.model.source.hash;
    return {
      dir,
      spec,
      env,
      gateway,
      upstreams,
      pending: new Map(),
      close: async () => {
        await gateway.stop();
        await closeAll(started as EchoUpstream[]);
      },
    };
  } catch (err) {
    await closeAll(started as EchoUpstream[]);
    throw err;
  }
}

function substitute(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\{([A-Za-z0-9_.:-]+)\}/g, (whole, name: string) => {
    if (!(name in vars)) throw new Error(`spec placeholder ${whole} has no value (known: ${Object.keys(vars).join(', ')})`);
    return vars[name];
  });
}

function headerVars(prefix: string, headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[`${prefix}${k.toLowerCase()}`] = Array.isArray(v) ? v.join(', ') : String(v);
  return out;
}

/** Compare `actual` against the spec value `expected`; push readable mismatches to `errors`. */
export function matchValue(actual: unknown, expected: unknown, where: string, vars: Record<string, string>, errors: string[]): void {
  if (expected === null) {
    if (actual !== undefined && actual !== null) errors.push(`${where}: expected absent, got ${JSON.stringify(actual)}`);
    return;
  }
  if (typeof expected === 'string') {
    const want = substitute(expected, vars);
    if (actual !== want) errors.push(`${where}: expected ${JSON.stringify(want)}, got ${JSON.stringify(actual)}`);
    return;
  }
  if (typeof expected === 'number' || typeof expected === 'boolean') {
    if (actual !== expected) errors.push(`${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      errors.push(`${where}: expected an array of ${expected.length}, got ${JSON.stringify(actual)}`);
      return;
    }
    expected.forEach((e, i) => matchValue(actual[i], e, `${where}[${i}]`, vars, errors));
    return;
  }
  const e = expected as Record<string, unknown>;
  if ('$absent' in e) {
    if (e.$absent && actual !== undefined) errors.push(`${where}: expected absent, got ${JSON.stringify(actual)}`);
    if (!e.$absent && actual === undefined) errors.push(`${where}: expected present`);
    return;
  }
  if ('$match' in e) {
    const re = new RegExp(substitute(String(e.$match), vars));
    if (actual === undefined || !re.test(String(actual))) errors.push(`${where}: expected to match /${re.source}/, got ${JSON.stringify(actual)}`);
    return;
  }
  if ('$min' in e || '$max' in e) {
    const n = typeof actual === 'number' ? actual : Number.NaN;
    if (Number.isNaN(n) || ('$min' in e && n < Number(e.$min)) || ('$max' in e && n > Number(e.$max))) {
      errors.push(`${where}: expected a number in [${e.$min ?? '-inf'}, ${e.$max ?? 'inf'}], got ${JSON.stringify(actual)}`);
    }
    return;
  }
  if ('$contains' in e) {
    const want = substitute(String(e.$contains), vars);
    if (typeof actual !== 'string' || !actual.includes(want)) errors.push(`${where}: expected to contain ${JSON.stringify(want)}, got ${JSON.stringify(actual)}`);
    return;
  }
  if ('$not' in e) {
    const sub: string[] = [];
    matchValue(actual, e.$not, where, vars, sub);
    if (!sub.length) errors.push(`${where}: expected anything but ${JSON.stringify(e.$not)}, got ${JSON.stringify(actual)}`);
    return;
  }
  if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) {
    errors.push(`${where}: expected an object, got ${JSON.stringify(actual)}`);
    return;
  }
  for (const [k, v] of Object.entries(e)) matchValue((actual as Record<string, unknown>)[k], v, `${where}.${k}`, vars, errors);
}

function describeResponse(res: HttpResponse): string {
  if (res.closed) return 'connection closed without a response';
  const hdrs = Object.entries(res.headers)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`)
    .join('\n  ');
  return `HTTP ${res.status}\n  ${hdrs}\n  body: ${res.text.slice(0, 800)}`;
}

async function checkExpect(ctx: SpecContext, step: Step, res: HttpResponse, sentHeaders: Record<string, string>): Promise<string[]> {
  const ex = step.expect;
  if (!ex) return [];
  const vars = { ...ctx.env, ...headerVars('res.header.', res.headers), ...headerVars('req.header.', sentHeaders) };
  const errors: string[] = [];
  if (ex.closed !== undefined && res.closed !== ex.closed) errors.push(`closed: expected ${ex.closed}, got ${res.closed}`);
  if (ex.status !== undefined && res.status !== ex.status) errors.push(`status: expected ${ex.status}, got ${res.status}`);
  for (const [name, want] of Object.entries(ex.headers ?? {})) {
    const v = res.headers[name.toLowerCase()];
    matchValue(Array.isArray(v) ? v.join(', ') : v, want, `header ${name}`, vars, errors);
  }
  if (ex.json !== undefined) {
    if (res.json === undefined) errors.push(`body: expected JSON, got ${JSON.stringify(res.text.slice(0, 300))}`);
    else matchValue(res.json, ex.json, 'json', vars, errors);
  }
  if (ex.bodyContains !== undefined) {
    const want = substitute(ex.bodyContains, vars);
    if (!res.text.includes(want)) errors.push(`body: expected to contain ${JSON.stringify(want)}`);
  }
  if (ex.accessLog) {
    // nginx writes the line when the request ends, unbuffered; allow a moment.
    const deadline = Date.now() + 2_000;
    let best: string[] = ['no JSON access-log line yet'];
    for (;;) {
      const lines = ctx.gateway.gw.accessLog().split('\n').filter(Boolean);
      let found = false;
      for (const line of lines) {
        let rec: unknown;
        try {
          rec = JSON.parse(line);
        } catch {
          best = [`access log line is not JSON: ${line}`];
          continue;
        }
        const sub: string[] = [];
        matchValue(rec, ex.accessLog, 'accessLog', vars, sub);
        if (!sub.length) {
          found = true;
          break;
        }
        best = [...sub, `(closest line: ${line})`];
      }
      if (found) break;
      if (Date.now() > deadline) {
        errors.push(...best, `access log:\n${lines.slice(-5).join('\n')}`);
        break;
      }
      await sleep(50);
    }
  }
  return errors;
}

function tallyKey(by: string, res: HttpResponse): string {
  if (by === 'status') return res.closed ? 'closed' : String(res.status);
  const m = /^header:(.+)$/.exec(by);
  if (!m) throw new Error(`tally.by must be "status" or "header:<name>", got ${by}`);
  const v = res.headers[m[1].toLowerCase()];
  return v === undefined ? '(absent)' : String(v);
}

function hitsSnapshot(ctx: SpecContext): Map<string, number> {
  return new Map([...ctx.upstreams].map(([k, u]) => [k, u.hits]));
}

function upstream(ctx: SpecContext, name: string): Counted {
  const u = ctx.upstreams.get(name);
  if (!u) throw new Error(`unknown upstream ${name} (declared: ${[...ctx.upstreams.keys()].join(', ')})`);
  return u;
}

function prepare(ctx: SpecContext, r: SpecRequest): { port: number; method: string; path: string; headers: Record<string, string>; body?: string } {
  const portName = r.port ?? (ctx.spec.ports ?? ['PORT_GW'])[0];
  const port = Number(ctx.env[portName]);
  if (!port) throw new Error(`unknown port placeholder ${portName}`);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k] = substitute(v, ctx.env);
  return { port, method: r.method ?? 'GET', path: substitute(r.path, ctx.env), headers, body: r.body === undefined ? undefined : substitute(r.body, ctx.env) };
}

/** Run one step; throws an Error listing every mismatch plus the responses, with nginx's error log attached. */
export async function runStep(ctx: SpecContext, step: Step): Promise<void> {
  await withErrorLog(ctx.gateway.gw, async () => {
    if (step.sleepMs !== undefined) {
      await sleep(Math.min(step.sleepMs, 5_000));
      return;
    }
    if (step.waitHits) {
      for (const [name, n] of Object.entries(step.waitHits)) {
        const u = upstream(ctx, name);
        await waitUntil(() => u.hits >= n, 5_000, `${name} to receive ${n} request(s) (has ${u.hits})`);
      }
      return;
    }
    if (step.await) {
      const p = ctx.pending.get(step.await);
      if (!p) throw new Error(`no background request labelled ${step.await}`);
      ctx.pending.delete(step.await);
      const res = await p;
      const errors = await checkExpect(ctx, step, res, {});
      if (errors.length) throw new Error(`step "${step.name}":\n- ${errors.join('\n- ')}\nresponse: ${describeResponse(res)}`);
      return;
    }
    if (!step.request) throw new Error(`step "${step.name}" has nothing to do`);
    const req = prepare(ctx, step.request);
    if (step.background) {
      const p = send(req);
      p.catch(() => undefined);
      ctx.pending.set(step.background, p);
      return;
    }
    const before = hitsSnapshot(ctx);
    const repeat = Math.min(Math.max(step.repeat ?? 1, 1), 500);
    const tally: Record<string, number> = {};
    const errors: string[] = [];
    let last: HttpResponse | null = null;
    for (let i = 0; i < repeat; i++) {
      const res = await send(req);
      last = res;
      const errs = await checkExpect(ctx, step, res, req.headers);
      if (errs.length) {
        errors.push(...errs.map((e) => (repeat > 1 ? `#${i + 1} ${e}` : e)), `response: ${describeResponse(res)}`);
        break;
      }
      if (step.tally) {
        const k = tallyKey(step.tally.by, res);
        tally[k] = (tally[k] ?? 0) + 1;
      }
    }
    if (step.tally && !errors.length) {
      const want = step.tally.counts;
      const keys = new Set([...Object.keys(want), ...Object.keys(tally)]);
      for (const k of keys) if ((tally[k] ?? 0) !== (want[k] ?? 0)) errors.push(`tally by ${step.tally.by}: expected ${JSON.stringify(want)}, got ${JSON.stringify(tally)}`);
    }
    if (step.hits && !errors.length) {
      for (const [name, n] of Object.entries(step.hits)) {
        const got = upstream(ctx, name).hits - (before.get(name) ?? 0);
        matchValue(got, n, `requests upstream ${name} received during the step`, ctx.env, errors);
      }
    }
    if (step.errorLog && !errors.length) {
      const log = ctx.gateway.gw.errorLog();
      for (const [pattern, n] of Object.entries(step.errorLog)) {
        const count = log.split('\n').filter((l) => new RegExp(pattern).test(l)).length;
        matchValue(count, n, `error-log lines matching /${pattern}/`, ctx.env, errors);
      }
    }
    if (errors.length) {
      const uniq = [...new Set(errors)];
      throw new Error(`step "${step.name}" (${req.method} ${req.path}):\n- ${uniq.join('\n- ')}${last && !uniq.some((e) => e.startsWith('response:')) ? `\nlast response: ${describeResponse(last)}` : ''}`);
    }
  });
}
