/// <reference path="../../node_modules/njs-types/ngx_http_js_module.d.ts" />
// Routing keys and model-aware routing. njs only *derives* values; nginx does the rest:
// `hash $gw_hash_key_<upstream> consistent` places the key on the ring (failover to the ring
// successor is nginx's passive health), and `map $gw_model $gw_model_upstream` picks the
// upstream block for a model. One njs call per request. See src/render/routing.ts.
//
// Variables (declared by the generated config):
//   $gw_hash_spec   "body:<field>" | "claim:<claim>" | ""   (set per location, or from the model)
//   $gw_hash_value  js_var: key taken from the body ("" → the upstream's hash_fallback)
//   $gw_model       js_var: the body's `model` (model routes)
//   $gw_route_mode  "model" on model routes
//   $gw_route_next  named location that proxies (@gw_next_<route>)
import { b64uDecodeString } from './base64url.ts';

// Keys longer than this are ignored (fallback): they come from the client.
export const MAX_KEY_LENGTH = 512;

// A top-level JSON object from a request body; null for anything else.
export function parseObject(text: string | undefined | null): { [k: string]: unknown } | null {
  if (typeof text !== 'string' || text.length === 0) {
    return null;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return null;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    return null;
  }
  return v as { [k: string]: unknown };
}

// A member as a hash key: strings as they are, finite numbers and booleans as text,
// anything else (objects, arrays, null, missing, over-long) as "" (the fallback).
export function keyOf(doc: { [k: string]: unknown } | null, name: string): string {
  if (doc === null || !Object.prototype.hasOwnProperty.call(doc, name)) {
    return '';
  }
  const v = doc[name];
  let s = '';
  if (typeof v === 'string') {
    s = v;
  } else if ((typeof v === 'number' && isFinite(v)) || typeof v === 'boolean') {
    s = String(v);
  }
  return s.length <= MAX_KEY_LENGTH ? s : '';
}

// The claim named in spec "claim:<name>" from a base64url JSON payload segment.
export function claimKeyFrom(spec: string | undefined, claims: string | undefined): string {
  if (typeof spec !== 'string' || spec.indexOf('claim:') !== 0 || typeof claims !== 'string' || claims.length === 0) {
    return '';
  }
  const json = b64uDecodeString(claims);
  return keyOf(parseObject(json), spec.substring(6));
}

// OpenAI-style error body.
export function openAiError(message: string, type: string, code: string): string {
  return JSON.stringify({ error: { message: message, type: type, code: code } });
}

function reject(r: NginxHTTPRequest, status: number, message: string, code: string): void {
  r.headersOut['Content-Type'] = 'application/json';
  r.headersOut['Cache-Control'] = 'no-store';
  r.return(status, openAiError(message, 'invalid_request_error', code) + '\n');
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
      reject(r, 400, 'The request body must be a JSON object with a "model" field.', 'invalid_json');
      return;
    }
    const model = doc.model;
    if (typeof model !== 'string' || model.length === 0) {
      reject(r, 400, 'You must provide a model parameter.', 'missing_model');
      return;
    }
    v.gw_model = model;
    if (!v.gw_model_upstream) {
      reject(r, 404, 'The model `' + (model.length > 200 ? model.substring(0, 200) + ' (truncated)' : model) + '` does not exist.', 'model_not_found');
      return;
    }
    spec = v.gw_model_hash || '';
    v.gw_hash_spec = spec;
  }
  if (spec.indexOf('body:') === 0) {
    v.gw_hash_value = keyOf(doc, spec.substring(5));
  }
  r.internalRedirect(v.gw_route_next || '@gw_missing_next');
}

// js_set $gw_claim_key gateway.claimKey; — evaluated when the upstream hashes, after auth.
export function claimKey(r: NginxHTTPRequest): string {
  const v = r.variables;
  return claimKeyFrom(v.gw_hash_spec, v.gw_client_claims);
}
