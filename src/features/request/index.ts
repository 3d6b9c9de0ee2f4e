// Request checks of a route: allowed methods (405 with Allow), required header values (404)
// and the body size limit (413).
import type { Feature } from '../../core/feature.ts';
import { d } from '../../plan/directive.ts';
import { errorBody } from '../../plan/errors.ts';
import { bare, headerVar, q } from '../../plan/quote.ts';

export const requestFeature: Feature = {
  name: 'request',
  summary: 'methods, required header values and body size per route',
  cost: { njsCalls: () => 0, measured: 'nginx if/return only' },
  route(ctx) {
    const r = ctx.route;
    if (r.match.methods) {
      const allowed = [...r.match.methods];
      if (allowed.includes('GET') && !allowed.includes('HEAD')) allowed.push('HEAD');
      const re = `^(${allowed.map((x) => bare(x, 'method')).join('|')})$`;
      ctx.checks.push({ head: `if ($request_method !~ ${q(re, 'regex')})`, lines: [d('return', '405')] });
      ctx.overrides[405] = `@${ctx.rid}_405`;
      ctx.errorLocations.push({
        head: `location @${ctx.rid}_405`,
        lines: [
          d('default_type', 'application/json'),
          ...ctx.responseHeaders,
          d('add_header', 'Allow', q(allowed.join(', '), 'text'), 'always'),
          d('return', '405', errorBody(405, ctx.errorFormat)),
        ],
      });
    }
    for (const h of r.match.headers) {
      ctx.checks.push({ head: `if (${headerVar(h.name)} != ${q(h.value, 'text')})`, lines: [d('return', '404')] });
    }
    if (r.maxBody) ctx.slots.body.push(d('client_max_body_size', bare(r.maxBody, 'size')));
  },
};
