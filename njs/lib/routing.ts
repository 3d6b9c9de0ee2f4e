/// <reference path="../../node_modules/njs-types/ngx_http_js_module.d.ts" />
// Routing keys and model-aware routing. njs only *derives* values; nginx does the rest:
// `hash $gw_hash_key_<upstream> consistent` places the key on the ring (failover to the ring
// successor is nginx's passive health), and `map $gw_model $gw_model_upstream` picks the
// upstream block for a model. One njs call per request. See src/render/routing.ts.
//
// Variables (declared by the generated config):
//   $gw_hash_spec   "body:<field>" | "prefix:<bytes>" | "claim:<claim>" | ""   (set per location, or from the model)
//   $gw_hash_value  js_var: key taken from the body ("" → the upstream's hash_fallback)
//   $gw_model       js_var: the body's `model` (model routes)
//   $gw_route_mode  "model" on model routes; "chain" when some model has a fallback chain
//   $gw_route_next  named location that proxies (@gw_next_<route>)
//   $gw_model_chain map: "_m<i>" when the model has a fallback chain (entry @gw_next_<route>_m<i>)
import { claimKeyFrom, keyOf, openAiError, parseObject } from './keys.ts';
import { promptPrefixKey } from './prefix.ts';

function reject(r: NginxHTTPRequest, status: number, message: string, code: string, param: string | null): void {
  r.headersOut['Content-Type'] = 'application/json';
  r.headersOut['Cache-Control'] = 'no-store';
  r.return(status, openAiError(message, 'invalid_request_error', code, param) + '\n');
}

function bodyText(r: NginxHTTPRequest): string | null {
  try {
    const t = r.requestText;
    return typeof t === 'string' ? t : null;
  } catch (e) {
    // the body went to a temporary file (larger than client_body_buffer_size)
    return null;
  }
}

// js_content gateway.route; — the public location of a route whose routing needs the body.
export function route(r: NginxHTTPRequest): void {
  const v = r.variables;
  const doc = parseObject(bodyText(r));
  let spec = v.gw_hash_spec || '';
  const mode = v.gw_route_mode;
  if (mode === 'model' || mode === 'chain') {
    if (doc === null) {
      reject(r, 400, 'The request body must be a JSON object with a "model" field.', 'invalid_json', null);
      return;
    }
    const model = doc.model;
    if (typeof model !== 'string' || model.length === 0) {
      reject(r, 400, 'You must provide a model parameter.', 'missing_model', 'model');
      return;
    }
    v.gw_model = model;
    if (!v.gw_model_upstream) {
      reject(r, 404, 'The model `' + (model.length > 200 ? model.substring(0, 200) + ' (truncated)' : model) + '` does not exist.', 'model_not_found', 'model');
      return;
    }
    spec = v.gw_model_hash || '';
    v.gw_hash_spec = spec;
  }
  if (spec.indexOf('body:') === 0) {
    v.gw_hash_value = keyOf(doc, spec.substring(5));
  } else if (spec.indexOf('prefix:') === 0) {
    v.gw_hash_value = promptPrefixKey(doc, Number(spec.substring(7)));
  } else if (spec.indexOf('claim:') === 0) {
    // the model's pool hashes on a claim: auth (which ran before this step) could not know it
    v.gw_claim_key = claimKeyFrom(spec, v.gw_client_claims);
  }
  // $gw_model_chain: "_m<i>" for a model with fallbacks (its chain's entry location), else ""
  // (read only where the catalogue has chains: other routes pay nothing for fallbacks)
  r.internalRedirect((v.gw_route_next || '@gw_missing_next') + (mode === 'chain' ? v.gw_model_chain || '' : ''));
}
