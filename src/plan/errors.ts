// Gateway-made error responses: JSON bodies, the server-wide error_page list and the named
// locations answering it, and a route's own overrides (a feature that answers a status on a
// route, e.g. 429 with Retry-After, registers it in RouteContext.overrides).
import { d, type Block, type Directive } from './directive.ts';
import { jsonBody, q } from './quote.ts';

export const ERROR_STATUSES: Record<number, [string, string]> = {
  400: ['bad_request', 'bad request'],
  401: ['unauthorized', 'authentication required'],
  403: ['forbidden', 'forbidden'],
  404: ['not_found', 'no route matches this request'],
  405: ['method_not_allowed', 'method not allowed on this route'],
  408: ['request_timeout', 'request timed out'],
  413: ['payload_too_large', 'request body too large'],
  414: ['uri_too_long', 'request URI too long'],
  429: ['rate_limited', 'too many requests'],
  500: ['internal_error', 'internal gateway error'],
  502: ['bad_gateway', 'upstream unavailable'],
  503: ['service_unavailable', 'service unavailable'],
  504: ['gateway_timeout', 'upstream timed out'],
};


/** The JSON body of a gateway-made error. */
export function errorBody(status: number): string {
  const [code, message] = ERROR_STATUSES[status];
  return jsonBody({ error: { status, code, message }, request_id: '$gw_request_id' }, ['gw_request_id']);
}

/**
 * nginx raises 400 and 414 while reading the request line, before there is a URI, and then
 * refuses a redirect to a named location ("empty URI in redirect to named location") and
 * answers 500. Those two go to internal URI locations instead.
 */
export const EARLY_ERRORS = new Set([400, 414]);
const errorTarget = (s: number): string => (EARLY_ERRORS.has(s) ? `/_gatewayctl/error/${s}` : `@gw_error_${s}`);

export function errorPageLines(overrides: Record<number, string> = {}): Directive[] {
  return [
    ...Object.keys(ERROR_STATUSES).map((s) => d('error_page', s, '=', overrides[Number(s)] ?? errorTarget(Number(s)))),
    // nginx's own codes for a request header too large (494) and plain HTTP on a TLS port
    // (497) otherwise get nginx's HTML 400 page
    d('error_page', '494', '497', '=', errorTarget(400)),
  ];
}

/** Named locations that answer gateway-produced errors with JSON. */
export function errorLocations(headers: string[]): Block[] {
  return Object.keys(ERROR_STATUSES).map((s) => {
    const target = errorTarget(Number(s));
    const internal = target.startsWith('/');
    return {
      head: internal ? `location = ${q(target, 'path')}` : `location ${target}`,
      lines: [...(internal ? [d('internal')] : []), d('default_type', 'application/json'), ...headers, d('return', s, errorBody(Number(s)))],
    };
  });
}

/** error_page at location level replaces the server's list, so only emit it when a route overrides a status. */
export function routeErrorPages(overrides: Record<number, string>): Directive[] {
  return Object.keys(overrides).length ? errorPageLines(overrides) : [];
}

