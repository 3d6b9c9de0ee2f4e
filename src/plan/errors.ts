// Gateway-made error responses: JSON bodies in two shapes, the server-wide error_page list and
// the named locations answering it, and a route's own overrides (a feature that answers a status
// on a route, e.g. 429 with Retry-After, registers it in RouteContext.overrides).
//
// Shapes (`errors:` on a listener or route; `models:` routes default to openai):
//   gateway  {"error":{"status","code","message"},"request_id"}
//   openai   {"error":{"message","type","param","code"}}  (the request id stays in X-Request-ID)
//
// Some errors share an HTTP status but not a meaning: nginx answers a connection limit with
// limit_conn_status, which is set to an internal status (CONN_LIMIT_STATUS) that the error
// pages turn into a 429 with its own code, so a client can tell it from a rate limit.
import { d, type Block, type Directive } from './directive.ts';
import { jsonBody, q } from './quote.ts';

export type ErrorFormat = 'gateway' | 'openai';

/** limit_conn_status: answered as 429 `concurrency_limited` / `concurrency_limit_exceeded`. */
export const CONN_LIMIT_STATUS = 460;
/** token budgets (src/features/limits/tokens.ts): answered as 429 `token_budget_exceeded`, OpenAI type `tokens` (as OpenAI's own token limits); only where a route has a budget. */
export const TOKEN_BUDGET_STATUS = 461;

export interface ErrorKind {
  /** the HTTP status the client gets */
  status: number;
  /** gateway shape: error.code and error.message */
  code: string;
  message: string;
  /** openai shape: error.type and error.code */
  type: string;
  openaiCode: string;
  /** not in the error_page lists unless a route overrides it */
  reserved?: boolean;
}

const kind = (status: number, code: string, message: string, type: string, openaiCode = code, reserved = false): ErrorKind => ({
  status,
  code,
  message,
  type,
  openaiCode,
  ...(reserved ? { reserved } : {}),
});

/** Every error the gateway answers, by the nginx status it is raised with. */
export const ERROR_KINDS: Record<number, ErrorKind> = {
  400: kind(400, 'bad_request', 'bad request', 'invalid_request_error'),
  401: kind(401, 'unauthorized', 'authentication required', 'authentication_error'),
  403: kind(403, 'forbidden', 'forbidden', 'permission_error'),
  404: kind(404, 'not_found', 'no route matches this request', 'invalid_request_error'),
  405: kind(405, 'method_not_allowed', 'method not allowed on this route', 'invalid_request_error'),
  408: kind(408, 'request_timeout', 'request timed out', 'invalid_request_error'),
  413: kind(413, 'payload_too_large', 'request body too large', 'invalid_request_error', 'request_too_large'),
  414: kind(414, 'uri_too_long', 'request URI too long', 'invalid_request_error'),
  429: kind(429, 'rate_limited', 'too many requests', 'rate_limit_error', 'rate_limit_exceeded'),
  [CONN_LIMIT_STATUS]: kind(429, 'concurrency_limited', 'too many concurrent requests', 'rate_limit_error', 'concurrency_limit_exceeded'),
  [TOKEN_BUDGET_STATUS]: kind(429, 'token_budget_exceeded', 'token budget exceeded', 'tokens', 'token_budget_exceeded', true),
  500: kind(500, 'internal_error', 'internal gateway error', 'server_error'),
  502: kind(502, 'bad_gateway', 'upstream unavailable', 'server_error', 'upstream_unavailable'),
  503: kind(503, 'service_unavailable', 'service unavailable', 'server_error'),
  504: kind(504, 'gateway_timeout', 'upstream timed out', 'server_error', 'upstream_timeout'),
};

/** The HTTP statuses the gateway answers with JSON: status → [gateway code, message] (the
 *  internal statuses, e.g. CONN_LIMIT_STATUS, are not among them; PAGE_STATUSES has both). */
export const ERROR_STATUSES: Record<number, [string, string]> = Object.fromEntries(
  Object.entries(ERROR_KINDS)
    .filter(([s, k]) => Number(s) === k.status)
    .map(([s, k]) => [s, [k.code, k.message]]),
);

/** The statuses every error_page list covers: ERROR_STATUSES and the internal ones in use
 *  (reserved ones only where a route overrides them). */
export const PAGE_STATUSES: number[] = Object.keys(ERROR_KINDS)
  .map(Number)
  .filter((s) => !ERROR_KINDS[s].reserved);

/** The status a client receives for an error raised with nginx status `s`. */
export const answerStatus = (s: number): number => ERROR_KINDS[s]?.status ?? s;

/** The JSON body of a gateway-made error, in the route's or listener's shape. */
export function errorBody(status: number, format: ErrorFormat = 'gateway'): string {
  // a few fixed texts, asked for by every route's error locations: made once each
  const key = `${format}:${status}`;
  let body = errorBodies.get(key);
  if (body === undefined) {
    const k = ERROR_KINDS[status];
    body =
      format === 'openai'
        ? openAiErrorBody(k.message, k.type, k.openaiCode)
        : jsonBody({ error: { status: k.status, code: k.code, message: k.message }, request_id: '$gw_request_id' }, ['gw_request_id']);
    errorBodies.set(key, body);
  }
  return body;
}
const errorBodies = new Map<string, string>();

/**
 * An OpenAI-shaped body; `message` and `code` may name variables listed in `vars` (fixed
 * reason codes, messages from maps), never user input.
 */
export function openAiErrorBody(message: string, type: string, code: string, vars: string[] = []): string {
  return jsonBody({ error: { message, type, param: null, code } }, vars);
}

/** The error shape of a route on a listener: the route's `errors:`, else openai for `models:` routes, else the listener's. */
export function routeErrorFormat(r: { errors: ErrorFormat | null; models: string | null }, l: { errors: ErrorFormat | null }): ErrorFormat {
  return r.errors ?? (r.models !== null ? 'openai' : (l.errors ?? 'gateway'));
}

export const listenerErrorFormat = (l: { errors: ErrorFormat | null }): ErrorFormat => l.errors ?? 'gateway';

/**
 * nginx raises 400 and 414 while reading the request line, before there is a URI, and then
 * refuses a redirect to a named location ("empty URI in redirect to named location") and
 * answers 500. Those two go to internal URI locations instead.
 */
export const EARLY_ERRORS = new Set([400, 414]);
const errorTarget = (s: number, f: ErrorFormat): string => {
  if (EARLY_ERRORS.has(s)) return f === 'openai' ? `/_gatewayctl/error/openai/${s}` : `/_gatewayctl/error/${s}`;
  return f === 'openai' ? `@gw_oai_error_${s}` : `@gw_error_${s}`;
};

/** Where a route's error page for status `s` points: its override, else the shared page of its shape. */
export const errorPageTarget = (s: number, overrides: Record<number, string>, format: ErrorFormat): string => overrides[s] ?? errorTarget(s, format);

export function errorPageLines(overrides: Record<number, string> = {}, format: ErrorFormat = 'gateway'): Directive[] {
  const statuses = [...new Set([...PAGE_STATUSES, ...Object.keys(overrides).map(Number)])].sort((a, b) => a - b);
  return [
    ...statuses.map((s) => d('error_page', String(s), '=', overrides[s] ?? errorTarget(s, format))),
    // nginx's own codes for a request header too large (494) and plain HTTP on a TLS port
    // (497) otherwise get nginx's HTML 400 page
    d('error_page', '494', '497', '=', errorTarget(400, format)),
  ];
}

/** Named (and the early errors' internal) locations that answer gateway-produced errors with JSON, in each shape asked for. */
export function errorLocations(headers: string[], formats: Iterable<ErrorFormat> = ['gateway']): Block[] {
  const out: Block[] = [];
  for (const f of (['gateway', 'openai'] as const).filter((x) => [...formats].includes(x))) {
    for (const s of PAGE_STATUSES) {
      const target = errorTarget(s, f);
      const internal = target.startsWith('/');
      out.push({
        head: internal ? `location = ${q(target, 'path')}` : `location ${target}`,
        lines: [
          ...(internal ? [d('internal')] : []),
          d('default_type', 'application/json'),
          ...headers,
          ...(s === CONN_LIMIT_STATUS ? [d('add_header', 'Retry-After', '1', 'always')] : []),
          d('return', String(answerStatus(s)), errorBody(s, f)),
        ],
      });
    }
  }
  return out;
}

/**
 * error_page at location level replaces the server's list, so only emit it when a route
 * overrides a status or answers in another shape than its server.
 */
export function routeErrorPages(overrides: Record<number, string>, format: ErrorFormat = 'gateway', serverFormat: ErrorFormat = 'gateway'): Directive[] {
  return Object.keys(overrides).length || format !== serverFormat ? errorPageLines(overrides, format) : [];
}
