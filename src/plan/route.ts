// The typed location plan of one route.
//
// Features do not write a location; they put directives into named slots of a RoutePlan and
// declare what the route needs (a body read by njs, an asynchronous auth subrequest, steering
// around unavailable servers, fallback chains). The one
// function that turns a plan into nginx locations, layoutRoute(), decides from those needs
// whether the route is one location or a public location that hands over to a named one, and
// which slot lands on which side. Nothing here looks at directive text.
//
// Slot order is the print order, fixed once (ROUTE_SLOTS). nginx itself runs directives by
// phase, not by position; the order only keeps the output stable and readable:
//
//   name             rewrite     set $gw_route (logs, error bodies)
//   access           access      allow / deny
//   auth             rewrite+access  credential header, auth_request (+ auth_request_set)
//   limits           preaccess   limit_req / limit_conn keyed by what is known up front
//   body             —           client_max_body_size
//   routingKey       rewrite     what njs derives the hash key from (set $gw_hash_spec)
//   clientLimits     preaccess   limits keyed by the authenticated client: must run in the
//                                location that has the identity (after any hand-over); nginx
//                                runs limit_req/limit_conn once per request, so when one zone
//                                waits, every zone of that kind waits with it (limits feature)
//   (proxy_pass)     content     from ProxyContent: differs in a named location
//   upstream         content     proxy_http_version, Host, Connection, forwarding headers
//   requestHeaders   content     set_headers, then identity headers (auth)
//   proxyTuning      content     timeouts, retries
//   streaming        content     unbuffered SSE / chunked output
//   cache            content     proxy_cache*
//   responseHeaders  header filter   add_header (security presets, CORS, cache status, …)
//   errorPages       —           error_page overrides of this route
//   raw              —           unsafe_nginx_route, verbatim, last
//
// Checks (`if` blocks of the rewrite phase: CORS preflight, methods, header matches, auth
// results) stay in the public location; lateChecks need the identity and go where it exists.
import type { Feature } from '../core/feature.ts';
import type { GatewayModel, Listener, Route } from '../model/types.ts';
import { d, type Block, type Directive } from './directive.ts';
import { listenerErrorFormat, routeErrorFormat, routeErrorPages } from './errors.ts';
import { emptySlots, type NjsCalls, type RouteContext, type RouteLocations, type RoutePlan } from './slots.ts';

// the plan's types live in the leaf slots.ts; importers of the planner get them here too
export * from './slots.ts';

/** A plan that cannot be laid out (a combination the rules should have refused). */
export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

/**
 * Lay a route plan out as nginx locations:
 *  - answer: the public location runs checks and limits, then try_files hands over to the
 *    answering named location, which gets the identity-dependent parts;
 *  - body step: the public location runs the njs body handler, which continues in a named
 *    location holding everything from the client limits on (or, for a request whose model has
 *    a fallback chain, in the chain's entry, which hands over to one proxying location per try);
 *  - auth hand-over: the public location authenticates (auth_request) and hands over with
 *    try_files to a named location holding everything from the client limits on;
 *  - otherwise one location holds every slot.
 */
export function layoutRoute(p: RoutePlan): RouteLocations {
  const s = p.slots;
  const pre = [...s.name, ...s.access, ...s.auth, ...s.limits, ...s.body];
  const label = `route ${p.route.name}`;
  const location: Block = { comment: `${label} (routes[${p.route.index}])${njsCallsNote(p.njsCalls)}`, head: p.head, lines: [], blocks: p.checks };
  const handOver = (next: string): Directive[] => [
    ...(p.needs.eitherMethod ? [d('error_page', '418', '=', next)] : []),
    d('try_files', NO_FILE, next),
  ];
  // a 418 jump leaves the public location in the rewrite phase, before its allow/deny and
  // address-keyed limits ran: the post-auth location repeats them (nginx applies limit_req and
  // limit_conn once per request, so the hand-over after auth_request does not count twice)
  const jumpGuards = p.needs.eitherMethod ? [...s.access, ...s.limits] : [];
  const continueInAuth = (b: Block): Block => (p.needs.auth ? continueIn(b) : b);
  const continueIn = (b: Block): Block => ({
    ...b,
    lines: p.needs.auth ? [p.routeName, ...jumpGuards, ...b.lines] : b.lines,
    blocks: [...(b.blocks ?? []), ...(p.needs.auth ? p.lateChecks : [])],
  });

  // steering (health checks, circuit breakers): the location that proxies or answers checks
  // last, after every other check, and jumps to the steer location, which repeats what a
  // rewrite-phase jump skips (the access-phase and limit lines) like `continueIn`
  const st = p.needs.steer;
  const steered = (b: Block): Block => (st ? { ...b, lines: [...b.lines, ...st.lines], blocks: [...(b.blocks ?? []), st.check] } : b);
  const steerLocations = (guards: Directive[], body: (proxyPass: Directive) => Directive[]): Block[] => {
    if (!st) return [];
    const content = st.answer ?? (st.proxyPass ? body(st.proxyPass) : null);
    if (!content) throw new PlanError(`route ${p.route.name}: steering needs a proxy_pass or an answer`);
    return [
      { comment: `${label}: while a server of its upstream is unavailable (health check, circuit breaker)`, head: `location ${st.next}`, lines: [p.routeName, ...guards, ...st.head, ...content], blocks: st.blocks },
      ...st.named,
    ];
  };

  if (p.content.kind === 'answer') {
    // a steered answer checks first: `return` runs in the rewrite phase in the order written,
    // so the answer itself moves to `<name>_static`, reached with try_files after the check
    const name = p.content.name;
    const answer: Block = { head: `location ${name}`, lines: st ? [d('try_files', NO_FILE, `${name}_static`)] : p.content.lines };
    // try_files before error_page 418: the order wave 1 printed
    location.lines = [...pre, ...s.errorPages, ...handOver(name).reverse()];
    const still: Block[] = st ? [{ head: `location ${name}_static`, lines: p.content.lines }] : [];
    const steerLocs = steerLocations(p.needs.auth ? [...jumpGuards, ...s.clientLimits] : [], () => []);
    if (!p.needs.auth) return { location, named: [...p.errorLocations, steered(answer), ...still, ...steerLocs] };
    if (!s.clientLimits.length) return { location, named: [...p.errorLocations, steered(continueIn(answer)), ...still, ...steerLocs] };
    // limits keyed by the client run in the preaccess phase, and `return` answers in the rewrite
    // phase before it: this location applies them (with the route's error pages: 429 with
    // Retry-After) and hands over to the one that answers (and checks the steering)
    const answering = `${name}_answer`;
    const limited = continueIn({ head: `location ${name}`, lines: [...s.clientLimits, ...s.errorPages, d('try_files', NO_FILE, answering)] });
    return { location, named: [...p.errorLocations, limited, steered({ head: `location ${answering}`, lines: [p.routeName, ...answer.lines] }), ...still, ...steerLocs] };
  }

  const proxying = (proxyPass: Directive): Directive[] => [
    ...s.clientLimits,
    proxyPass,
    ...s.upstream,
    ...s.requestHeaders,
    ...s.proxyTuning,
    ...s.streaming,
    ...s.cache,
    ...s.responseHeaders,
    ...s.errorPages,
    ...s.raw,
  ];
  const step = p.needs.bodyStep;
  if (step) {
    const next: Block = { comment: `${label}: proxying after the njs body step`, head: `location ${step.next}`, lines: proxying(p.content.proxyPass) };
    const chains = (step.chains ?? []).flatMap((c): Block[] => [
      continueInAuth({ comment: `${label}: a model with fallbacks, before its first pool`, head: `location ${c.entry}`, lines: [...s.clientLimits, ...s.responseHeaders, ...s.errorPages, d('try_files', NO_FILE, c.stages[0].name)] }),
      ...c.stages.map((st): Block => ({
        head: `location ${st.name}`,
        lines: [p.routeName, ...st.before, st.proxyPass, ...s.upstream, ...withoutRouteBody(s.requestHeaders, st.after), ...s.proxyTuning, ...s.streaming, ...s.responseHeaders, ...st.after, ...s.raw],
        blocks: st.checks,
      })),
      ...c.extra,
    ]);
    const stepLines = [...s.routingKey, ...step.lines, ...s.responseHeaders, ...s.errorPages];
    const proxied = steered(p.needs.auth ? continueIn(next) : next);
    const rest = [...p.errorLocations, ...steerLocations(p.needs.auth ? jumpGuards : [], proxying)];
    if (!p.needs.eitherMethod) {
      location.lines = [...pre, ...stepLines, step.handler];
      return { location, named: [proxied, ...chains, ...rest] };
    }
    // An accepted API key (route accepting either credential) jumps out of the public location
    // in the rewrite phase, before its auth_request: a twin of the body step continues there
    // (allow/deny and address-keyed limits again, the body buffering, the same njs handler),
    // so each request still makes one njs call per phase and both credentials reach `next`.
    const keyStep = `${step.next}_key`;
    location.lines = [...pre, ...stepLines, d('error_page', '418', '=', keyStep), step.handler];
    const twin: Block = {
      comment: `${label}: the njs body step after an accepted API key`,
      head: `location ${keyStep}`,
      lines: [p.routeName, ...jumpGuards, ...s.body, ...stepLines, step.handler],
    };
    return { location, named: [twin, proxied, ...chains, ...rest] };
  }

  const handover = p.needs.authHandover;
  if (handover) {
    location.lines = [...pre, ...s.routingKey, ...s.responseHeaders, ...s.errorPages, ...handOver(handover.next)];
    const next = continueIn({ comment: `${label}: after authentication`, head: `location ${handover.next}`, lines: proxying(p.content.proxyPassNamed) });
    return { location, named: [steered(next), ...p.errorLocations, ...steerLocations(jumpGuards, proxying)] };
  }

  location.lines = [...pre, ...s.routingKey, ...proxying(p.content.proxyPass)];
  const one = steered(location);
  // the jump leaves in the rewrite phase: the steer location repeats access, auth, limits
  // (the route's name is its first line already)
  return { location: one, named: [...p.errorLocations, ...steerLocations([...s.access, ...s.auth, ...s.limits, ...s.body, ...s.routingKey], proxying)] };
}

/** A path that never exists: try_files falls through to its named location at once. */
export const NO_FILE = '"/.gatewayctl-no-such-file"';

/** Sum of the features' declared njs calls for a route (the per-request price reviewers see). */
export function routeNjsCalls(r: Route, m: GatewayModel, features: readonly Feature[]): NjsCalls {
  const byFeature: Record<string, number> = {};
  for (const f of features) {
    const n = f.cost?.njsCalls(r, m) ?? 0;
    if (n > 0) byFeature[f.name] = n;
  }
  return { total: Object.values(byFeature).reduce((a, b) => a + b, 0), byFeature };
}

// "at most": the features count the calls a request may take (an API key nginx checks itself
// takes none of auth's; a JWT cache hit skips the subrequest's)
const njsCallsNote = (c: NjsCalls): string =>
  c.total ? `; njs calls per request: at most ${c.total} (${Object.entries(c.byFeature).map(([f, n]) => `${f} ${n}`).join(', ')})` : '';

/**
 * Plan one route: the core names the route and adds the error pages and the raw snippet;
 * every feature contributes in three passes (response headers, route, finish).
 */
export function planRoute(
  r: Route,
  l: Listener,
  m: GatewayModel,
  features: readonly Feature[],
  base: { rid: string; head: string; routeName: Directive; raw: Directive[] },
): RoutePlan {
  const { rid, routeName } = base;
  const ctx: RouteContext = {
    route: r,
    listener: l,
    model: m,
    rid,
    slots: emptySlots(),
    checks: [],
    lateChecks: [],
    errorLocations: [],
    overrides: {},
    errorFormat: routeErrorFormat(r, l),
    responseHeaders: [],
    content: null,
    proxyHost: null,
    needs: { auth: r.auth !== null, authHandover: null, bodyStep: null, eitherMethod: false, steer: null },
  };
  ctx.slots.name.push(routeName);
  for (const f of features) if (f.listenerResponseHeaders) ctx.responseHeaders.push(...f.listenerResponseHeaders(l, m));
  for (const f of features) if (f.routeResponseHeaders) ctx.responseHeaders.push(...f.routeResponseHeaders(ctx));
  for (const f of features) f.route?.(ctx);
  for (const f of features) f.routeFinish?.(ctx);
  ctx.slots.responseHeaders.push(...ctx.responseHeaders);
  ctx.slots.errorPages.push(...routeErrorPages(ctx.overrides, ctx.errorFormat, listenerErrorFormat(l)));
  ctx.slots.raw.push(...base.raw);
  if (!ctx.content) throw new PlanError(`route ${r.name}: no feature answers or proxies it`);
  return {
    route: { name: r.name, index: r.index },
    njsCalls: routeNjsCalls(r, m, features),
    head: base.head,
    routeName,
    slots: ctx.slots,
    checks: ctx.checks,
    lateChecks: ctx.lateChecks,
    content: ctx.content,
    errorLocations: ctx.errorLocations,
    needs: ctx.needs,
  };
}

/**
 * A stage that sends a body of its own (`proxy_set_body`, allowed once per location) drops the
 * route's: that stage's body is built from the route's (a fallback model's body starts from the
 * one token budgets rewrote), so nothing is lost.
 */
function withoutRouteBody(lines: Directive[], own: Directive[]): Directive[] {
  const body = (x: Directive) => x.startsWith('proxy_set_body ');
  return own.some(body) ? lines.filter((x) => !body(x)) : lines;
}
