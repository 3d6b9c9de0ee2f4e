// The types of a route's location plan: its slots in print order, what it proxies to or
// answers with, the needs features declare, and the context features fill. A leaf module:
// the Feature contract (src/core/feature.ts) and the planner (route.ts) both build on it.
import type { GatewayModel, Listener, Route } from '../model/types.ts';
import type { Block, Directive } from './directive.ts';
import type { ErrorFormat } from './errors.ts';

export const ROUTE_SLOTS = [
  'name',
  'access',
  'auth',
  'limits',
  'body',
  'routingKey',
  'clientLimits',
  'upstream',
  'requestHeaders',
  'proxyTuning',
  'streaming',
  'cache',
  'responseHeaders',
  'errorPages',
  'raw',
] as const;
export type RouteSlot = (typeof ROUTE_SLOTS)[number];
export type RouteSlots = Record<RouteSlot, Directive[]>;

export const emptySlots = (): RouteSlots => Object.fromEntries(ROUTE_SLOTS.map((s) => [s, []])) as unknown as RouteSlots;

/** The route proxies: proxy_pass differs in a named location (no URI part allowed there). */
export interface ProxyContent {
  kind: 'proxy';
  /** proxy_pass in the route's own location */
  proxyPass: Directive;
  /** proxy_pass once moved to a named location after an auth hand-over */
  proxyPassNamed: Directive;
}

/** The gateway answers itself (respond, models list) from a named location, after checks and limits. */
export interface AnswerContent {
  kind: 'answer';
  /** the named location's name, `@…` */
  name: string;
  lines: Directive[];
}

/** njs reads the body (js_content) and redirects to a named location that proxies. */
export interface BodyStep {
  /** the named location the njs handler continues in */
  next: string;
  /** buffering and routing-mode lines for the public location, before the handler */
  lines: Directive[];
  handler: Directive; // js_content …
  /** models with a fallback chain: the handler continues in a chain's `entry` instead of `next` */
  chains?: FallbackChain[];
}

/**
 * A chain of named locations proxying one request in turn (model fallbacks): `entry` runs what
 * `next` runs before proxying (client limits, late checks, the route's error pages) and hands
 * over to the first stage; each stage proxies, and its own error pages (`after`) send the
 * statuses it falls back on to the next stage. `extra`: blocks the stages point at.
 */
export interface FallbackChain {
  entry: string;
  stages: ChainStage[];
  extra: Block[];
}

export interface ChainStage {
  name: string;
  proxyPass: Directive;
  before: Directive[];
  after: Directive[];
  checks: Block[];
  /** what names the stage's upstream in nginx: its name, or the variable of a weighted split */
  target: string;
  /** the upstreams `target` may be */
  upstreams: string[];
  /** where the stage's fallback statuses go: the next stage, or the chain's last answer */
  next: string;
}

/**
 * The route leaves nginx's balancer while a server of its upstream is unavailable: the
 * location that proxies (or answers) runs `check` after every other check (a rewrite-phase
 * `if` returning 418) and jumps to the named location `next`, which repeats what the jump
 * skipped and continues with `head`, then the proxying slots with `proxyPass` (or `answer`
 * for a gateway-made answer).
 */
export interface SteerNeed {
  /** lines of the location the check runs in (error_page 418, the flag file's root, …) */
  lines: Directive[];
  check: Block;
  next: string;
  /** the steer location's own lines before the proxying slots */
  head: Directive[];
  blocks: Block[];
  /** proxy_pass of the steer location (proxy content) */
  proxyPass: Directive | null;
  /** the steer location's answer (answer content) */
  answer: Directive[] | null;
  /** further named locations (the steer location's own error answers) */
  named: Block[];
}

/** What the route needs from the layout, declared by the features that contributed. */
export interface RouteNeeds {
  /** the route authenticates at all (any method) */
  auth: boolean;
  /** an auth_request subrequest runs (async JWT): the identity exists only after a hand-over
   *  to this named location (`@…`) */
  authHandover: { next: string } | null;
  /** njs must read the request body before proxying */
  bodyStep: BodyStep | null;
  /** an accepted credential jumps to the post-auth location (error_page 418): the API key of a
   *  route accepting either method, or a JWT found in the verified-token cache */
  eitherMethod: boolean;
  /** the route is steered around unavailable servers (health checks, circuit breakers) */
  steer?: SteerNeed | null;
}

export interface RoutePlan {
  /** route name and index in gateway.yaml, for the location comments */
  route: { name: string; index: number };
  /** njs calls per request on this route, by feature (their declared cost) */
  njsCalls: NjsCalls;
  head: string; // `location …`
  /** set $gw_route "<name>", repeated in every named location that continues the request */
  routeName: Directive;
  slots: RouteSlots;
  checks: Block[];
  lateChecks: Block[];
  content: ProxyContent | AnswerContent;
  /** named locations the route's own error pages point at (@…_405, @…_429, …) */
  errorLocations: Block[];
  needs: RouteNeeds;
}

export interface RouteLocations {
  location: Block;
  named: Block[];
}

/** njs calls one request on a route makes, in total and by feature. */
export interface NjsCalls {
  total: number;
  byFeature: Record<string, number>;
}

/** What features see and fill while a route is planned (src/core/feature.ts). */
export interface RouteContext {
  route: Route;
  listener: Listener;
  model: GatewayModel;
  /** `gw_route_<name>`: the prefix of this route's named locations */
  rid: string;
  slots: RouteSlots;
  checks: Block[];
  lateChecks: Block[];
  errorLocations: Block[];
  /** status → the named location that answers it on this route (its error_page overrides) */
  overrides: Record<number, string>;
  /** the shape of the route's gateway-made error bodies (errorBody(status, ctx.errorFormat)) */
  errorFormat: ErrorFormat;
  /** every response header of the route, complete once pass 1 ran */
  responseHeaders: Directive[];
  content: ProxyContent | AnswerContent | null;
  /** set by a feature that chooses where requests go (model routing: a map variable) */
  proxyHost: string | null;
  needs: RouteNeeds;
}

