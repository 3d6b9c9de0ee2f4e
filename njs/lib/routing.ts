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
//   $gw_route_mode  "model" on model routes
//   $gw_route_next  named location that proxies (@gw_next_<route>)
//   $gw_route_chain instead of $gw_route_next on model routes of a catalogue with fallback chains:
//                   @gw_next_<route>, to which the map $gw_model_chain appends "_m<i>" for a model
//                   with a chain (its entry location), else ""
import { claimKeyFrom, keyOf, MAX_KEY_LENGTH, openAiError, parseObject } from './keys.ts';
import { promptPrefixKey } from './prefix.ts';
import { reserveBudgets } from './budgets.ts';

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
  if (v.gw_route_mode === 'model') {
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
  // token budgets and r/h, r/d windows (njs/lib/budgets.ts): reserved here, before any byte
  // goes upstream; a refusal is answered by the route's error pages. A route without them pays
  // one variable read (the helpers are created only when reserveBudgets runs)
  if (v.gw_budgets && !reserveBudgets(r, doc === null ? {} : doc, v.gw_model || '')) {
    return;
  }
  // no $gw_route_next: a model route of a catalogue with fallback chains (other routes pay nothing)
  r.internalRedirect(v.gw_route_next || (v.gw_route_chain || '@gw_missing_next') + (v.gw_model_chain || ''));
}

// The fast path of route (src/njs/bundle.ts, hasFastPath): a JSON object body on a route
// without token budgets, a model the catalogue knows, and a hash key that is a string body
// field or none, decided flat (no helper created, no global but JSON looked up). Anything
// else, before any redirect, goes to the full handler, which decides from scratch (the
// variables written here it writes again with the same values).
export function routeFast(r: NginxHTTPRequest, full: (r: NginxHTTPRequest) => void): void {
  const v = r.variables;
  let doc: { [k: string]: unknown } | null = null;
  try {
    const t = r.requestText;
    const d = typeof t === 'string' && t.length > 0 ? JSON.parse(t) : null;
    // an array has a length; so has an object with a "length" member: both to the full handler
    if (d !== null && typeof d === 'object' && d.length === undefined) {
      doc = d;
    }
  } catch (e) {
    // not JSON, or the body went to a temporary file
  }
  if (doc === null || v.gw_budgets) {
    full(r);
    return;
  }
  // a model route's hash key is its model's ($gw_model_hash): the route's own spec is read
  // only on other routes (each variable read costs ~1,400 instructions here)
  let spec = '';
  if (v.gw_route_mode !== 'model') {
    spec = v.gw_hash_spec || '';
  } else {
    const model = doc.model;
    if (typeof model !== 'string' || model.length === 0) {
      full(r);
      return;
    }
    v.gw_model = model;
    if (!v.gw_model_upstream) {
      full(r);
      return;
    }
    spec = v.gw_model_hash || '';
    v.gw_hash_spec = spec;
  }
  if (spec.indexOf('body:') === 0) {
    const x = doc[spec.substring(5)];
    if (typeof x !== 'string' && x !== undefined) {
      full(r); // a number, a boolean (keyOf spells them), anything else, or an inherited member
      return;
    }
    v.gw_hash_value = typeof x === 'string' && x.length <= MAX_KEY_LENGTH ? x : '';
  } else if (spec !== '') {
    full(r);
    return;
  }
  r.internalRedirect(v.gw_route_next || (v.gw_route_chain || '@gw_missing_next') + (v.gw_model_chain || ''));
}
