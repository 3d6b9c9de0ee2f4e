// Fixed answers: a route with `respond:` is answered by the gateway after its checks, access
// rules and limits (try_files hands over to a named location; `return` in the location itself
// would run in the rewrite phase, before all of them).
import type { Feature } from '../../core/feature.ts';
import { d } from '../../plan/directive.ts';
import { bare, q } from '../../plan/quote.ts';

export const respondFeature: Feature = {
  name: 'respond',
  summary: 'fixed responses from the gateway itself',
  cost: { njsCalls: () => 0, measured: 'nginx return only' },
  route(ctx) {
    const x = ctx.route.respond;
    if (!x) return;
    ctx.content = {
      kind: 'answer',
      name: `@${ctx.rid}_respond`,
      lines: [d('default_type', q(x.contentType, 'text')), ...ctx.responseHeaders, d('return', bare(x.status, 'int'), q(x.body, 'text'))],
    };
  },
};
