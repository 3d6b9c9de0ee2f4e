// The Feature contract. A feature (src/features/<name>/) owns one concern of the gateway end
// to end: the keys of gateway.yaml it reads, its cross-field rules, what it contributes to the
// nginx configuration at http, server and route level, the njs handlers it calls, the files
// it writes, the oldest nginx/njs it runs on, and what it costs per request.
//
// The core (load → schema → normalize → inputs → finalize → rules → outputs → plan → print →
// write) receives the list of
// features (src/features/index.ts) from the composition root and calls these hooks; it never
// imports a feature. Hooks run in registry order, which is therefore also the order of their
// contributions inside each slot.
import type { Diagnostic, GatewayModel, Listener, Route, SourcePos, Upstream } from '../model/types.ts';
import type { Block, Directive, LogField } from '../plan/directive.ts';
import type { RouteContext } from '../plan/slots.ts';
import type { InputRequest, Inputs } from '../config/inputs.ts';
import type { DiffSink } from '../diff/types.ts';

export interface NormalizeContext {
  /** the position of a key path in gateway.yaml */
  at(path: string): SourcePos;
  /** the directory relative paths in gateway.yaml are resolved against */
  baseDir: string;
}

/** A version this feature's output needs on the target, why, and the gateway.yaml key that asks for it. */
export interface VersionNeed {
  nginx?: string;
  njs?: string;
  why: string;
  at: SourcePos;
}

export interface OutputContext {
  /** clock for time-dependent outputs (revoked/expired API keys); default now */
  now?: Date;
  /** the gateway.yaml position of a key path, or the fallback */
  locate(yamlPath: string, fallback: SourcePos): SourcePos;
}

export interface FeatureOutputs {
  /** relative path → content (secret-bearing files are written 0600 by the write step) */
  files: Record<string, string>;
  diagnostics: Diagnostic[];
  /** keys of maps written here (sizes map_hash_*) */
  mapKeys: string[][];
}

/** A rule reports through these (the key path is relative to the document root). */
export type Report = (code: string, at: SourcePos, path: string, message: string) => void;

/** An njs entry point the feature calls, and in which request phase. */
export interface NjsUse {
  handler: string; // `gateway.<export>`
  /** js_set (variable, evaluated lazily by nginx), js_content (content phase, may be async),
   *  auth_request (an internal js_content location), log (js_set read by the access log),
   *  body_filter (js_body_filter: once per response chunk) */
  phase: 'js_set' | 'js_content' | 'auth_request' | 'log' | 'body_filter';
  /** whether this model's output calls it; absent = whenever the output loads njs. Only the
   *  handlers a build calls are in its njs module: every exported handler costs every njs
   *  request (src/njs/bundle.ts) */
  used?(m: GatewayModel): boolean;
}

/**
 * The per-request price of a feature, as measured by scripts/bench.ts (ratio to a plain
 * proxy_pass in the same run): the number of njs calls it adds to a route is what the plan
 * counts; `measured` quotes the benchmark so reviewers see what a route pays.
 */
export interface FeatureCost {
  /** njs calls this feature adds to one request on this route (0 when it uses nginx alone) */
  njsCalls(r: Route, m: GatewayModel): number;
  /** what the benchmark measured for the feature's own path */
  measured: string;
}

/** http-level contributions; each list is placed in its file in registry order. */
export interface HttpContribution {
  /** conf.d/00-maps.conf: variable declarations (js_var/js_set …) */
  mapLines?: Directive[];
  /** conf.d/00-maps.conf: map/geo blocks */
  maps?: Block[];
  /** conf.d/10-limits.conf */
  limits?: Directive[];
  /** conf.d/20-caches.conf: zones and variables */
  caches?: Directive[];
  /** conf.d/20-caches.conf: map blocks */
  cacheMaps?: Block[];
  /** the gateway.yaml entry behind top-level lines above (zones, caches), for `check` */
  origins?: [Directive, SourcePos][];
  /** keys of each map this feature fills with user-given keys (sizes map_hash_*) */
  mapKeys?: string[][];
  /** header names this feature passes to proxy_set_header or proxy_hide_header in any
   *  location (sizes proxy_headers_hash_*: one name too long for a bucket fails nginx -t) */
  proxyHeaderNames?: string[];
  /** extra JSON access-log fields */
  logFields?: LogField[];
  /** http-level access logs of their own (log_format and access_log lines, placed beside the
   *  main access log in nginx.conf); with any, `global.access_log: false` leaves the main log
   *  out instead of writing `access_log off` (which would silence these too) */
  accessLogs?: Directive[];
  /** files of their own (relative path → text), included from http{} */
  confFiles?: Record<string, { lines: string[]; blocks: Block[] }>;
  /** how many variables the map blocks of files written by `outputs` and included from
   *  http{} define (the key map): counted with the others for variables_hash */
  includedVariables?: number;
}

/** a JSON Schema (draft 2020-12) object, as JSON */
export type JsonSchema = { [key: string]: unknown };

/**
 * The places of gateway.yaml a feature adds keys to: the top level (`root`), `global`, a
 * listener, an upstream, a route (entries of `listeners`, `upstreams`, `routes`) and a limit
 * zone (each zone of `limits.rate` and `limits.conn`, hosted by the limits feature).
 */
export type SchemaPlace = 'root' | 'global' | 'listener' | 'upstream' | 'route' | 'limitZone';

/** keys a feature adds to one place, and where they go */
export interface SchemaKeys {
  /** the key they follow, the core's or another feature's (the published schema keeps its
   *  key order); absent, or a key no registered feature adds: after every other key, in
   *  registry order */
  after?: string;
  properties: Record<string, JsonSchema>;
}

/**
 * A feature's part of the gateway.yaml schema (src/config/schema.ts merges the fragments
 * into the core's keys in registry order and refuses a key two features claim).
 */
export type SchemaFragment = { [P in SchemaPlace]?: SchemaKeys } & {
  /** further forms of an upstream's `hash_key` (oneOf branches after the core's) */
  hashKeys?: JsonSchema[];
  /** places inside this fragment's own keys that other features add to, as JSON Pointers
   *  from the document root (the limit zones live in the limits feature's `limits`); keys
   *  for a place no registered feature hosts are left out */
  hosts?: { [P in Exclude<SchemaPlace, 'root'>]?: string[] };
};

export interface Feature {
  name: string;
  /** one line: what it does for a user */
  summary: string;
  /** its keys of gateway.yaml (src/features/<name>/schema.ts) */
  schema?: SchemaFragment;
  njs?: NjsUse[];
  /** the oldest nginx/njs this feature's output runs on, when it needs more than the core */
  requires?(m: GatewayModel): VersionNeed[];
  cost?: FeatureCost;
  /** the route keeps the whole request body in memory (client_body_in_single_buffer) */
  buffersBody?(r: Route, m: GatewayModel): boolean;
  /** fill this feature's part of the typed model from the schema-valid document */
  normalize?(raw: Record<string, unknown>, m: GatewayModel, ctx: NormalizeContext): void;
  /** the output loads the njs module because of this feature */
  needsNjs?(m: GatewayModel): boolean;
  /** inputs besides gateway.yaml this feature's outputs are built from (read in the load stage) */
  inputs?(m: GatewayModel): InputRequest[];
  /** complete the model from the inputs, before any rule runs (the model is final afterwards) */
  finalize?(m: GatewayModel, inputs: Inputs): Diagnostic[];
  /** files of the build besides the rendered config (from the inputs; no disk access) */
  outputs?(m: GatewayModel, inputs: Inputs, ctx: OutputContext): FeatureOutputs;
  /** its part of `gatewayctl diff`'s semantic summary (top-level settings it owns), risky changes flagged */
  diff?(base: GatewayModel, head: GatewayModel, changes: DiffSink): void;
  /** a build file as it may be shown (diff): the secret material this feature wrote replaced */
  redact?(rel: string, text: string): string;
  /** cross-field rules over the normalized model */
  rules?(m: GatewayModel, err: Report, warn: Report): void;
  http?(m: GatewayModel): HttpContribution;
  /** response headers on every answer of a listener (server level, error pages, routes) */
  listenerResponseHeaders?(l: Listener, m: GatewayModel): Directive[];
  /** server blocks of a listener besides its own: `instead` of them (e.g. while its certificate
   *  is pending), or `after` them (e.g. the HTTP→HTTPS redirect server) */
  listenerServers?(m: GatewayModel, l: Listener): { instead?: Block[]; after?: Block[] } | null;
  /** server-level directives right after `listen` (TLS certificates and profile) */
  serverHead?(m: GatewayModel, l: Listener, server: { catchAll: boolean }): Directive[];
  /** server-level directives after the server's name (access rules, …) */
  serverLines?(m: GatewayModel, l: Listener): Directive[];
  /** directives a feature adds to an upstream block, after its servers and keepalive (nginx's sticky cookie) */
  upstreamLines?(u: Upstream, m: GatewayModel): Directive[];
  /** the nginx variable a consistent-hash key kind is read from, for kinds this feature derives */
  upstreamHashKeySource?(u: Upstream, m: GatewayModel): string | null;
  /** locations of the internal status listener (global.status), after stub_status and health */
  statusLocations?(m: GatewayModel): Block[];
  /** internal locations a server block needs for these routes (before the routes') */
  serverLocations?(m: GatewayModel, l: Listener, routes: Route[]): Block[];
  /** pass 1: response headers every answer of this route carries (error pages included) */
  routeResponseHeaders?(ctx: RouteContext): Directive[];
  /** pass 2: checks, slots, content, needs */
  route?(ctx: RouteContext): void;
  /** pass 3: after every feature's route(), e.g. to wrap the error pages the others chose */
  routeFinish?(ctx: RouteContext): void;
}

export type Diagnostics = Diagnostic[];
