// Token budgets (`limits.tokens`) and request windows of an hour or a day (`limits.rate` zones
// with r/h, r/d): fixed-window counters in the njs shared dict `gw_tokens`, reserved by the body
// step on routes whose body the gateway reads (njs/lib/budgets.ts), before any byte goes
// upstream. Nothing here adds an njs call of its own on those routes:
//   reserve     the body step (js_content gateway.route) reads $gw_budgets ("<windows>|<tokens>")
//               and reserves (or refuses with TOKEN_BUDGET_STATUS / 429, or clamps max_tokens)
//   rewrite     a clamped max_tokens or an added stream_options.include_usage: the step writes
//               the new body to the js_var $gw_tokens_body; the proxying location sends
//               `proxy_set_body $gw_body_out` (the map gives $request_body when it is empty)
//   reconcile   the shared log-phase call (gateway.metricsLog, the metrics feature renders it
//               whenever metrics or budgets are on) adjusts the reservation to the real usage the
//               shared LLM body filter saw (gateway.llmBody), which also drops the usage chunk a
//               client did not ask for
import type { Report } from '../../core/feature.ts';
import type { GatewayModel, Route, SourcePos, TokenKey, TokenZone, WindowZone } from '../../model/types.ts';
import { d, raw, type Block, type Directive } from '../../plan/directive.ts';
import { errorBody, TOKEN_BUDGET_STATUS } from '../../plan/errors.ts';
import type { RouteContext } from '../../plan/slots.ts';
import { bare, q } from '../../plan/quote.ts';
import { needsBodyStep } from '../routing/render.ts';
import { limitDivisor } from '../fleet/index.ts';
import { perModel } from '../../model/memo.ts';

export const TOKENS_ZONE = 'gw_tokens';
export const DEFAULT_TOKENS_DICT = '1m';
const WINDOW_SECONDS = { minute: 60, hour: 3600, day: 86400 } as const;

/* eslint-disable @typescript-eslint/no-explicit-any */
/** `limits.tokens` into the model; `limits.rate` zones with r/h or r/d move to windowZones (nginx's limit_req has only r/s and r/m). */
export function normalizeTokens(rawDoc: Record<string, unknown>, m: GatewayModel, at: (p: string) => SourcePos): void {
  const lim = (rawDoc.limits ?? {}) as any;
  m.tokenZones = Object.entries((lim.tokens ?? {}) as Record<string, any>).map(([name, z]) => ({
    name,
    key: (z.key ?? 'client_id') as TokenKey,
    window: z.window ?? 'minute',
    tokens: z.tokens,
    defaultMaxTokens: z.default_max_tokens ?? 1024,
    onExceed: z.on_exceed ?? 'refuse',
    minTokens: z.min_tokens ?? 16,
    at: at(`limits.tokens.${name}`),
  }));
  const windows: WindowZone[] = [];
  for (const [name, z] of Object.entries((lim.rate ?? {}) as Record<string, any>)) {
    const mt = /^([0-9]+)r\/([hd])$/.exec(String(z.rate));
    if (!mt) continue;
    const key = z.key === undefined ? 'client_ip' : typeof z.key === 'string' ? z.key : 'header';
    windows.push({ name, key: key as TokenKey, window: mt[2] === 'h' ? 'hour' : 'day', requests: Number(mt[1]), at: at(`limits.rate.${name}`) });
  }
  m.windowZones = windows;
  if (windows.length) {
    const names = new Set(windows.map((w) => w.name));
    m.rateZones = m.rateZones.filter((z) => !names.has(z.name));
  }
  const rawRoutes = (rawDoc.routes ?? []) as any[];
  for (const r of m.routes) r.tokenLimits = rawRoutes[r.index]?.token_limits ?? [];
}

/** the window zones a route names in rate_limits (they are not nginx zones) */
export const routeWindows = (r: Route, m: GatewayModel): WindowZone[] => (m.windowZones ?? []).filter((w) => r.rateLimits.includes(w.name));
/** the route counts r/h, r/d windows (in its body step) */
export const hasWindows = (r: Route, m: GatewayModel): boolean => routeWindows(r, m).length > 0 && needsBodyStep(r, m) && r.models !== 'list';
const routeTokens = (r: Route, m: GatewayModel): TokenZone[] => (r.tokenLimits ?? []).map((n) => (m.tokenZones ?? []).find((z) => z.name === n)!).filter(Boolean);

/** Does the route reserve token budgets (and so need the body filter and the log-phase call)? */
export const hasTokenLimits = (r: Route, m: GatewayModel): boolean => routeTokens(r, m).length > 0 && needsBodyStep(r, m);
/** (asked for every route by the shared log-phase call's cost: once per final model) */
export const tokenLimitsUsed = perModel((m: GatewayModel): boolean => m.routes.some((r) => hasTokenLimits(r, m)));
const budgetsUsed = (m: GatewayModel): boolean => m.routes.some((r) => needsBodyStep(r, m) && (routeTokens(r, m).length > 0 || routeWindows(r, m).length > 0));

/** The allowance one instance enforces (fleet.limits: divided divides it, rounded down). */
export const instanceAllowance = (n: number, m: GatewayModel): number => Math.floor(n / limitDivisor(m));

export function checkTokenRules(m: GatewayModel, err: Report): void {
  const names = (m.tokenZones ?? []).map((z) => z.name);
  const rateNames = new Set([...m.rateZones.map((z) => z.name), ...(m.windowZones ?? []).map((w) => w.name)]);
  for (const z of m.tokenZones ?? []) {
    if (rateNames.has(z.name)) err('GW443', z.at, `limits.tokens.${z.name}`, `zone name "${z.name}" is also a rate limit zone; token budgets need names of their own`);
    if (z.key === 'client_id' || z.key === 'tier') {
      if (!m.auth) err('GW444', z.at, `limits.tokens.${z.name}.key`, `key ${z.key} needs the authenticated client, but there is no auth: block`);
    }
    if (instanceAllowance(z.tokens, m) < 1) {
      err('GW445', z.at, `limits.tokens.${z.name}.tokens`, `tokens ${z.tokens} cannot be divided over ${limitDivisor(m)} instances (fleet.limits: divided)`);
    }
  }
  for (const w of m.windowZones ?? []) {
    if ((w.key as string) === 'header') err('GW446', w.at, `limits.rate.${w.name}.key`, `r/h and r/d windows are counted by client_ip or client_id, not by a header`);
    if (instanceAllowance(w.requests, m) < 1) {
      err('GW445', w.at, `limits.rate.${w.name}.rate`, `rate ${w.requests}r/${w.window === 'hour' ? 'h' : 'd'} cannot be divided over ${limitDivisor(m)} instances (fleet.limits: divided)`);
    }
  }
  for (const r of m.routes) {
    const p = `routes[${r.index}]`;
    (r.tokenLimits ?? []).forEach((n, k) => {
      if (!names.includes(n)) err('GW440', r.at, `${p}.token_limits[${k}]`, `unknown token budget "${n}" (defined: ${names.length ? names.join(', ') : 'none'})`);
    });
    if ((r.tokenLimits ?? []).length && !needsBodyStep(r, m)) {
      err('GW441', r.at, `${p}.token_limits`, 'token budgets need the request body (max_tokens, the prompt): only routes with models: route or a body hash key read it');
    }
    for (const w of routeWindows(r, m)) {
      if (!needsBodyStep(r, m)) {
        err('GW442', r.at, `${p}.rate_limits`, `zone ${w.name} (${w.requests}r/${w.window === 'hour' ? 'h' : 'd'}) is counted by the body step's njs call: only routes with models: route or a body hash key have one (use r/s or r/m here)`);
      }
      if (w.key === 'client_id' && !r.auth) {
        err('GW444', r.at, `${p}.rate_limits`, `zone ${w.name} is keyed by client_id, but the route does not authenticate`);
      }
    }
    for (const z of routeTokens(r, m)) {
      if ((z.key === 'client_id' || z.key === 'tier') && !r.auth && m.auth) {
        err('GW444', r.at, `${p}.token_limits`, `token budget ${z.name} is keyed by ${z.key}, but the route does not authenticate`);
      }
    }
  }
}

// `name:key:window:allowance:default:mode:min` per zone, ";"-joined; names are [a-z0-9_-]
function tokenSpec(r: Route, m: GatewayModel): string {
  return routeTokens(r, m)
    .map((z) => [z.name, z.key, WINDOW_SECONDS[z.window], instanceAllowance(z.tokens, m), z.defaultMaxTokens, z.onExceed, z.minTokens].join(':'))
    .join(';');
}

function windowSpec(r: Route, m: GatewayModel): string {
  return routeWindows(r, m)
    .map((w) => [w.name, w.key, WINDOW_SECONDS[w.window], instanceAllowance(w.requests, m)].join(':'))
    .join(';');
}

export function tokenHttpLines(m: GatewayModel): Directive[] {
  if (!budgetsUsed(m)) return [];
  return [
    raw('# token budgets and r/h, r/d windows: fixed-window counters (njs/lib/budgets.ts), reserved by the body step'),
    d('js_shared_dict_zone', `zone=${TOKENS_ZONE}:${bare(DEFAULT_TOKENS_DICT, 'size')}`, 'type=number', 'timeout=1d'),
    d('js_var', '$gw_budgets'),
    d('js_var', '$gw_tokens'),
    d('js_var', '$gw_tokens_body'),
    d('js_var', '$gw_tokens_carry'),
    d('js_var', '$gw_tokens_retry', '1'),
    d('js_var', '$gw_tokens_left', '0'),
  ];
}

export function tokenMaps(m: GatewayModel): Block[] {
  if (!tokenLimitsUsed(m)) return [];
  return [
    {
      comment: 'token budgets: the body the upstream gets; the request\'s own unless the body step rewrote it (clamped max_tokens, added include_usage)',
      head: 'map $gw_tokens_body $gw_body_out',
      lines: [d('""', '$request_body'), d('default', '$gw_tokens_body')],
    },
  ];
}

/** The route's contributions: the specs the body step reads, the body rewrite, the 429 answers. */
export function tokenRoute(ctx: RouteContext): void {
  const { route: r, model: m } = ctx;
  if (!needsBodyStep(r, m) || r.models === 'list') return;
  const tokens = tokenSpec(r, m);
  const windows = windowSpec(r, m);
  if (!tokens && !windows) return;
  // one variable, one read by the body step: "<windows>|<tokens>"
  ctx.slots.routingKey.push(d('set', '$gw_budgets', q(`${windows}|${tokens}`, 'expr')));
  if (tokens) ctx.slots.requestHeaders.push(d('proxy_set_body', '$gw_body_out'));
  // refusals: a budget (internal status TOKEN_BUDGET_STATUS) or a window (429), Retry-After =
  // the seconds to the window's end, written by the body step
  const answer = (status: number, name: string, remaining: boolean): void => {
    ctx.overrides[status] = `@${ctx.rid}_${name}`;
    ctx.errorLocations.push({
      head: `location @${ctx.rid}_${name}`,
      lines: [
        d('default_type', 'application/json'),
        ...ctx.responseHeaders,
        d('add_header', 'Retry-After', '$gw_tokens_retry', 'always'),
        ...(remaining ? [d('add_header', 'x-ratelimit-remaining-tokens', '$gw_tokens_left', 'always')] : []),
        d('return', '429', errorBody(status, ctx.errorFormat)),
      ],
    });
  };
  if (tokens) answer(TOKEN_BUDGET_STATUS, '429_tokens', true);
  // a window refusal is a rate limit: the limits feature's own 429 location when the route has
  // nginx zones too (its Retry-After reads $gw_tokens_retry then), else one of its own
  if (windows && !ctx.overrides[429]) answer(429, '429', false);
}
