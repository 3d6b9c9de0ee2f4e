// Placement and fallbacks of the model catalogue in nginx (the chain itself: src/routing/placement.ts).
//
//   pools        `map $gw_model $gw_model_upstream` names the first pool; a weighted model's
//                value is its `split_clients $request_id $gw_model_split_<i>`, and the maps
//                $gw_model_split_<i>_<k> name the pool k places further in its list.
//   chain        njs (the body step, no extra call) continues in `@gw_next_<route>` + the map
//                $gw_model_chain ("_m<i>" for a model with a chain): the entry location runs
//                what @gw_next_<route> runs before proxying (client limits, late checks, the
//                route's error pages) and hands over (try_files) to stage 0. Every stage proxies
//                with `proxy_intercept_errors on` and error pages for exactly the statuses the
//                model falls back on (plus nginx's own 502/504, to the route's usual pages), so
//                any other upstream answer (a 400 about the prompt, a 404) reaches the client as
//                the pool sent it. A fallback status goes (error_page, recursive_error_pages) to
//                the next stage; after the last one a 503 `upstream_unavailable`.
//   first byte   nginx intercepts only a status it has not sent on: once the response header
//                went to the client nothing is retried (a stream cut later stays cut).
//   deadline     each later stage first checks a volatile map over $request_time; past the
//                deadline the request is answered 503 at once. proxy_next_upstream_timeout
//                bounds the retries inside one pool by the same time.
//   model body   a stage serving another model proxies `proxy_set_body $gw_fallback_body`, a
//                js_set that rewrites the body's `model` (evaluated in such a stage only).
import type { GatewayModel, ModelEntry } from '../../model/types.ts';
import { d, type Block, type Directive } from '../../plan/directive.ts';
import { errorPageTarget, openAiErrorBody, type ErrorFormat } from '../../plan/errors.ts';
import { bare, ident, jsonBody, q } from '../../plan/quote.ts';
import type { FallbackChain, RouteContext } from '../../plan/route.ts';
import { atLeastMsRegex, deadlineMs, fallbackStatuses, hasChain, isWeighted, modelChain, type Stage } from '../../routing/placement.ts';

export const FALLBACK_BODY_HANDLER = 'gateway.fallbackBody';
const FALLBACK_BODY_VAR = '$gw_fallback_body';
/** nginx's own failures of a proxying location (no connection, timeout): always answered as JSON */
const NGINX_UPSTREAM_ERRORS = [502, 504];

const splitVar = (i: number, shift = 0): string => `$gw_model_split_${i}${shift ? `_${shift}` : ''}`;
const lateVar = (ms: number): string => `$gw_fallback_late_${ms}`;
const usesModels = (m: GatewayModel): boolean => m.routes.some((r) => r.models === 'route');

/** The value of `map $gw_model $gw_model_upstream` for a model: its first pool, or its split. */
export function firstPool(m: GatewayModel, e: ModelEntry): string {
  return isWeighted(e) ? splitVar(m.models.indexOf(e)) : bare(e.pools[0]?.upstream ?? e.upstream, 'name');
}

export const chainModels = (m: GatewayModel): ModelEntry[] => (usesModels(m) ? m.models.filter((e) => hasChain(m, e)) : []);

/** Some chain sends a request to another model's pool (the js_set that rewrites the body is used). */
export const fallbackRewritesBody = (m: GatewayModel): boolean => chainModels(m).some((e) => modelChain(m, e).some((s) => s.model !== null));

export function placementHttpLines(m: GatewayModel): Directive[] {
  // nocache: two stages of one request may send it as two different models
  return fallbackRewritesBody(m) ? [d('js_set', FALLBACK_BODY_VAR, FALLBACK_BODY_HANDLER, 'nocache')] : [];
}

/** Percents of a weighted model's split (hundredths, the last pool takes the rest: `*`). */
function splitPercents(e: ModelEntry): string[] {
  const total = e.pools.reduce((a, p) => a + (p.weight ?? 1), 0);
  return e.pools.slice(0, -1).map((p) => {
    const h = Math.max(1, Math.floor(((p.weight ?? 1) * 10000) / total));
    return `${h % 100 === 0 ? h / 100 : (h / 100).toFixed(2)}%`;
  });
}

/** http-level blocks: weighted splits and their rotations, the chain map, the deadline maps. */
export function placementMapBlocks(m: GatewayModel): Block[] {
  if (!usesModels(m) || !m.models.length) return [];
  const out: Block[] = [];
  m.models.forEach((e, i) => {
    if (!isWeighted(e)) return;
    const names = e.pools.map((p) => bare(p.upstream, 'name'));
    const pct = splitPercents(e);
    out.push({
      comment: `model ${e.id}: pools by weight (${e.pools.map((p) => `${p.upstream} ${p.weight ?? 1}`).join(', ')})`,
      head: `split_clients "$request_id" ${splitVar(i)}`,
      origin: e.at,
      lines: [...pct.map((x, j) => d(x, names[j])), d('*', names[names.length - 1])],
    });
    for (let k = 1; k < names.length; k++) {
      out.push({ head: `map ${splitVar(i)} ${splitVar(i, k)}`, origin: e.at, lines: names.map((nm, j) => d(nm, names[(j + k) % names.length])) });
    }
  });
  const chained = chainModels(m);
  if (chained.length) {
    out.push({
      comment: 'models with a fallback chain: njs continues in @gw_next_<route><suffix>',
      head: 'map $gw_model $gw_model_chain',
      lines: [d('default', '""'), ...chained.map((e) => d(q(e.id, 'expr'), q(`_m${m.models.indexOf(e)}`, 'expr')))],
    });
  }
  const deadlines = [...new Set(chained.filter((e) => e.fallback?.deadline).map((e) => deadlineMs(e.fallback!.deadline!)))].sort((a, b) => a - b);
  for (const ms of deadlines) {
    out.push({
      comment: `fallback deadline ${ms} ms: "1" once the request is that old (read anew at each stage)`,
      head: `map $request_time ${lateVar(ms)}`,
      lines: [d('volatile'), d('default', '""'), d(q(`~${atLeastMsRegex(ms)}`, 'regex'), '1')],
    });
  }
  return out;
}

function exhaustedBody(format: ErrorFormat): string {
  const message = 'no upstream serving this model could answer';
  if (format === 'openai') return openAiErrorBody(message, 'server_error', 'upstream_unavailable');
  return jsonBody({ error: { status: 503, code: 'upstream_unavailable', message }, request_id: '$gw_request_id' }, ['gw_request_id']);
}

/** The stage's upstream as nginx names it: the upstream, or the weighted split's variable. */
function stageUpstream(st: Stage): string {
  return st.pick.kind === 'upstream' ? bare(st.pick.name, 'name') : splitVar(st.pick.model, st.pick.shift);
}

function chainFor(ctx: RouteContext, e: ModelEntry, next: string): FallbackChain {
  const { route: r, model: m } = ctx;
  const i = m.models.indexOf(e);
  const stem = `@gw_fb_${ident(r.name)}_m${i}`;
  const exhausted = `${stem}_exhausted`;
  const codes = fallbackStatuses(e);
  const deadline = e.fallback?.deadline ? deadlineMs(e.fallback.deadline) : null;
  const answer = d('return', '503', exhaustedBody(ctx.errorFormat));
  const stages = modelChain(m, e);
  return {
    entry: `${next}_m${i}`,
    stages: stages.map((st, k) => {
      const to = k + 1 < stages.length ? `${stem}_${k + 1}` : exhausted;
      const before: Directive[] = st.model !== null ? [d('set', '$gw_fallback_model', q(st.model, 'expr'))] : [];
      const after: Directive[] = [d('proxy_intercept_errors', 'on'), d('recursive_error_pages', 'on'), d('error_page', ...codes.map(String), '=', to)];
      for (const s of NGINX_UPSTREAM_ERRORS.filter((x) => !codes.includes(x))) after.push(d('error_page', String(s), '=', errorPageTarget(s, ctx.overrides, ctx.errorFormat)));
      if (deadline !== null && !r.retries?.timeout) after.push(d('proxy_next_upstream_timeout', bare(`${deadline}ms`, 'duration')));
      if (st.model !== null) after.push(d('proxy_set_body', FALLBACK_BODY_VAR));
      const checks: Block[] = k > 0 && deadline !== null ? [{ head: `if (${lateVar(deadline)})`, lines: [answer] }] : [];
      // the `if` answers with this location's default_type (an upstream's answer keeps its own)
      if (checks.length) before.push(d('default_type', 'application/json'));
      const target = stageUpstream(st);
      return { name: k === 0 ? `${stem}_0` : `${stem}_${k}`, proxyPass: d('proxy_pass', `http://${target}`), before, after, checks, target, upstreams: st.upstreams, next: to };
    }),
    extra: [{ comment: `route ${r.name}, model ${e.id}: every stage failed`, head: `location ${exhausted}`, lines: [d('default_type', 'application/json'), ...ctx.responseHeaders, answer] }],
  };
}

/** routeFinish: the fallback chains of a model route (its overrides and headers are complete). */
export function routeChains(ctx: RouteContext): void {
  const step = ctx.needs.bodyStep;
  if (ctx.route.models !== 'route' || !step) return;
  const chains = chainModels(ctx.model).map((e) => chainFor(ctx, e, step.next));
  if (chains.length) step.chains = chains;
}
