// CORS per route: the allowed origin echoed from a map, preflights answered with 204 before
// any other check, and the CORS headers on every answer of the route, errors included.
import type { Feature } from '../../core/feature.ts';
import type { GatewayModel } from '../../model/types.ts';
import { d, type Block, type Directive } from '../../plan/directive.ts';
import { answerStatus, EARLY_ERRORS, errorBody, PAGE_STATUSES } from '../../plan/errors.ts';
import { bare, ident, q } from '../../plan/quote.ts';
import { corsSchema } from './schema.ts';

/** "A, B, C" from header names, each checked. */
export function headerList(names: string[]): string {
  for (const n of names) q(n, 'header');
  return q(names.join(', '), 'text');
}

function corsMaps(m: GatewayModel): Block[] {
  const corsRoutes = m.routes.filter((r) => r.cors);
  if (!corsRoutes.length) return [];
  const blocks: Block[] = [
    {
      comment: 'CORS preflight: OPTIONS with Access-Control-Request-Method',
      head: 'map "$request_method:$http_access_control_request_method" $gw_cors_preflight',
      lines: [d('default', '0'), d(q('~^OPTIONS:.', 'regex'), '1')],
    },
  ];
  for (const r of corsRoutes) {
    const c = r.cors!;
    const id = ident(r.name);
    const any = c.origins.includes('*');
    const originLines = any ? [d('default', '"*"')] : [d('default', '""'), ...c.origins.map((o) => d(q(o, 'origin'), '$http_origin'))];
    blocks.push({ comment: `CORS for route ${r.name}`, head: `map $http_origin $gw_cors_origin_${id}`, lines: originLines, origin: r.at });
    if (c.credentials) {
      blocks.push({
        head: `map $http_origin $gw_cors_credentials_${id}`,
        origin: r.at,
        lines: [d('default', '""'), ...c.origins.map((o) => d(q(o, 'origin'), '"true"'))],
      });
    }
    const methods = [...new Set([...c.methods, 'OPTIONS'])];
    blocks.push({
      head: `map $gw_cors_preflight $gw_cors_preflight_methods_${id}`,
      origin: r.at,
      lines: [d('default', '""'), d('1', q(methods.map((x) => bare(x, 'method')).join(', '), 'text'))],
    });
    blocks.push({
      head: `map $gw_cors_preflight $gw_cors_preflight_headers_${id}`,
      origin: r.at,
      lines: [d('default', '""'), d('1', headerList(c.headers))],
    });
    blocks.push({
      head: `map $gw_cors_preflight $gw_cors_preflight_max_age_${id}`,
      origin: r.at,
      lines: [d('default', '""'), d('1', q(String(c.maxAge), 'token'))],
    });
  }
  return blocks;
}

export const corsFeature: Feature = {
  name: 'cors',
  summary: 'CORS origins, preflights and headers per route',
  schema: corsSchema,
  cost: { njsCalls: () => 0, measured: 'nginx maps only' },
  http: (m) => ({ maps: corsMaps(m), mapKeys: m.routes.filter((r) => r.cors).map((r) => r.cors!.origins.filter((o) => o !== '*')) }),
  routeResponseHeaders(ctx) {
    const r = ctx.route;
    if (!r.cors) return [];
    const c = r.cors;
    const id = ident(r.name);
    const out: Directive[] = [];
    out.push(d('add_header', 'Access-Control-Allow-Origin', `$gw_cors_origin_${id}`, 'always'));
    out.push(d('add_header', 'Vary', '"Origin"', 'always'));
    if (c.credentials) out.push(d('add_header', 'Access-Control-Allow-Credentials', `$gw_cors_credentials_${id}`, 'always'));
    if (c.exposeHeaders.length) out.push(d('add_header', 'Access-Control-Expose-Headers', headerList(c.exposeHeaders), 'always'));
    out.push(d('add_header', 'Access-Control-Allow-Methods', `$gw_cors_preflight_methods_${id}`, 'always'));
    out.push(d('add_header', 'Access-Control-Allow-Headers', `$gw_cors_preflight_headers_${id}`, 'always'));
    out.push(d('add_header', 'Access-Control-Max-Age', `$gw_cors_preflight_max_age_${id}`, 'always'));
    return out;
  },
  route(ctx) {
    // a preflight is answered before method checks, limits and auth
    if (ctx.route.cors) ctx.checks.push({ head: 'if ($gw_cors_preflight)', lines: [d('return', '204')] });
  },
  routeFinish(ctx) {
    if (!ctx.route.cors) return;
    // Errors the gateway itself produces on a CORS route carry the route's CORS headers, or
    // the browser hides the JSON error from the page (the server-wide pages cannot know them).
    for (const s of PAGE_STATUSES) {
      if (ctx.overrides[s] || EARLY_ERRORS.has(s)) continue;
      ctx.overrides[s] = `@${ctx.rid}_error_${s}`;
      ctx.errorLocations.push({
        head: `location @${ctx.rid}_error_${s}`,
        lines: [d('default_type', 'application/json'), ...ctx.responseHeaders, d('return', String(answerStatus(s)), errorBody(s, ctx.errorFormat))],
      });
    }
  },
};
