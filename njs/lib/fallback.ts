/// <reference path="../../node_modules/njs-types/ngx_http_js_module.d.ts" />
// A fallback to another model (src/features/routing/fallback.ts): the stage location that sends
// the request to that model's pool names it in $gw_fallback_model and proxies this variable's
// value as the body (`proxy_set_body $gw_fallback_body`), so the pool sees its own model id.
// Evaluated only in such a stage: a request served by its first pool never calls it.
// It starts from the body the route's body step rewrote when there is one ($gw_tokens_body:
// token budgets clamped max_tokens or asked for include_usage), so the fallback model gets the
// same limits and reports the usage the budget is reconciled with.
import { parseObject } from './json.ts';

// js_set $gw_fallback_body gateway.fallbackBody;
export function fallbackBody(r: NginxHTTPRequest): string {
  let text = r.variables.gw_tokens_body || '';
  if (text === '') {
    try {
      const t = r.requestText;
      text = typeof t === 'string' ? t : '';
    } catch (e) {
      return '';
    }
  }
  const doc = parseObject(text);
  const model = r.variables.gw_fallback_model || '';
  if (doc === null || model.length === 0) {
    return text;
  }
  doc.model = model;
  return JSON.stringify(doc);
}
