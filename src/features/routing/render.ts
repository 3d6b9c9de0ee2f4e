// Rendering for njs-derived consistent-hash keys and model-aware routing.
//
// nginx keeps the ring: every consistent_hash upstream renders `hash $gw_hash_key_<name>
// consistent`, and only the *key* comes from njs:
//   body_field  js_content gateway.route (public location) reads the body, writes the field to
//               the js_var $gw_hash_value and redirects to the named location @gw_next_<route>,
//               which proxies; the body read by njs is the one sent upstream.
//   jwt_claim   the js_var $gw_claim_key, written by the JWT handler that verified the token
//               (claim named by $gw_hash_spec, set in the rewrite phase), or by the body step
//               on model routes: no njs call of its own (one call for identity and claims).
//   client_id   no njs of its own: a map over $gw_client_id, which auth sets.
// Each map turns "" into the upstream's hash_fallback. Model routes use the same js_content
// step: njs writes $gw_model, nginx maps it to an upstream name ($gw_model_upstream) and
// `proxy_pass http://$gw_model_upstream` needs no resolver because the name is an upstream
// block. Missing/unknown models are answered by njs (400/404, OpenAI error shape).
import type { GatewayModel, ModelEntry, Route, Upstream } from '../../model/types.ts';
import { modelChain } from '../../routing/placement.ts';
import { chainModels, firstPool } from './fallback.ts';
import { MODEL_ID } from './schema.ts';
import { bare, ident, jsonBody, q, RenderError } from '../../plan/quote.ts';
import { d, type Block, type Directive } from '../../plan/directive.ts';
import type { BodyStep } from '../../plan/route.ts';

const MODEL_ID_RE = new RegExp(MODEL_ID);
const FIELD_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** js_content step for requests whose routing needs the body. */
export const ROUTE_HANDLER = 'gateway.route';

/** The nginx variable an njs-derived key kind is read from (the map source). */
export function njsKeySource(u: Upstream): string | null {
  switch (u.hashKey?.kind) {
    case 'body_field':
    case 'prompt_prefix':
      return '$gw_hash_value';
    case 'jwt_claim':
      return '$gw_claim_key';
    case 'client_id':
      return '$gw_client_id';
    default:
      return null;
  }
}

/** "body:user" / "claim:tenant" for njs, or null when njs derives nothing for this upstream. */
export function hashSpec(u: Upstream | undefined): string | null {
  const k = u?.balance === 'consistent_hash' ? u.hashKey : null;
  if (!k) return null;
  if (k.kind === 'body_field' && FIELD_RE.test(k.name)) return `body:${k.name}`;
  if (k.kind === 'prompt_prefix') return `prefix:${bare(String(k.bytes), 'int')}`;
  if (k.kind === 'jwt_claim' && FIELD_RE.test(k.name)) return `claim:${k.name}`;
  if (k.kind === 'body_field' || k.kind === 'jwt_claim') throw new RenderError(`upstream ${u!.name}: unsafe field name ${JSON.stringify(k.name)}`);
  return null;
}

function modelId(id: string): string {
  if (!MODEL_ID_RE.test(id)) throw new RenderError(`unsafe model id ${JSON.stringify(id)}`);
  return q(id, 'expr');
}

const upstreamOf = (m: GatewayModel, name: string | null) => m.upstreams.find((u) => u.name === name);

/** Does this route need the js_content body step? */
export function needsBodyStep(r: Route, m: GatewayModel): boolean {
  if (r.models === 'route') return true;
  const spec = hashSpec(upstreamOf(m, r.upstream));
  return !!spec && (spec.startsWith('body:') || spec.startsWith('prefix:'));
}

/** http-level declarations (00-maps.conf lines); empty unless routing uses njs. */
export function routingHttpLines(m: GatewayModel): Directive[] {
  const kinds = new Set(m.upstreams.filter((u) => u.balance === 'consistent_hash').map((u) => u.hashKey?.kind));
  const models = m.routes.some((r) => r.models === 'route');
  const out: Directive[] = [];
  if (models || kinds.has('body_field') || kinds.has('prompt_prefix') || kinds.has('jwt_claim')) {
    out.push(d('js_var', '$gw_hash_spec'), d('js_var', '$gw_hash_value'));
  }
  if (models) out.push(d('js_var', '$gw_model'));
  if (kinds.has('jwt_claim')) out.push(d('js_var', '$gw_client_claims'), d('js_var', '$gw_claim_key'));
  if (kinds.has('client_id')) out.push(d('js_var', '$gw_client_id'));
  return out;
}

/** The hash key njs derives for a model: the one spec of the upstreams its chain may reach (rules: GW464). */
export function modelHashSpec(m: GatewayModel, e: ModelEntry): string | null {
  const ups = [...new Set(modelChain(m, e).flatMap((s) => s.upstreams))];
  return ups.map((u) => hashSpec(upstreamOf(m, u))).find((x) => x !== null) ?? null;
}

/** Model catalogue maps: model → its first pool (firstPool: a name or its weighted split), and model → hash spec. */
export function routingMapBlocks(m: GatewayModel): Block[] {
  if (!m.routes.some((r) => r.models === 'route') || !m.models.length) return [];
  const blocks: Block[] = [
    {
      comment: 'model-aware routing: the JSON body\'s "model" (set by njs) → upstream block; "" = unknown model (404)',
      head: 'map $gw_model $gw_model_upstream',
      lines: [d('default', '""'), ...m.models.map((e) => d(modelId(e.id), firstPool(m, e)))],
    },
  ];
  const specs = m.models.map((e) => [e, modelHashSpec(m, e)] as const).filter(([, s]) => s !== null);
  if (specs.length) {
    blocks.push({
      comment: 'hash key njs derives for the chosen model\'s upstream',
      head: 'map $gw_model $gw_model_hash',
      lines: [d('default', '""'), ...specs.map(([e, s]) => d(modelId(e.id), q(s!, 'expr')))],
    });
  }
  return blocks;
}

/** GET /v1/models in the OpenAI list shape, rendered at build time. */
export function modelsListJson(m: GatewayModel): unknown {
  return {
    object: 'list',
    data: m.models.map((e) => ({ id: e.id, object: 'model', created: e.created, owned_by: e.ownedBy })),
  };
}

/** Location lines for a `models: list` route (replaces proxying). */
export function modelsListLines(m: GatewayModel, responseHeaders: Directive[]): Directive[] {
  for (const e of m.models) modelId(e.id);
  return [d('default_type', 'application/json'), ...responseHeaders, d('return', '200', jsonBody(modelsListJson(m)))];
}

export const MODEL_UPSTREAM_TARGET = 'http://$gw_model_upstream';

/** Extra lines for a plain location whose upstream hashes on a JWT claim (no body step). */
export function claimSpecLines(r: Route, m: GatewayModel): Directive[] {
  if (needsBodyStep(r, m)) return [];
  const spec = hashSpec(upstreamOf(m, r.upstream));
  return spec?.startsWith('claim:') ? [d('set', '$gw_hash_spec', q(spec, 'expr'))] : [];
}

/**
 * The njs body step of a route whose routing needs the body: the public location buffers the
 * body in one piece (njs reads it with r.requestText; larger bodies get 413), names the
 * routing mode and runs the handler, which continues in the named location @gw_next_<route>.
 */
export function bodyStep(r: Route, m: GatewayModel): BodyStep | null {
  if (!needsBodyStep(r, m)) return null;
  const next = `@gw_next_${ident(r.name)}`;
  const buf = r.maxBody ?? '1m';
  const lines: Directive[] = [];
  if (!r.maxBody) lines.push(d('client_max_body_size', '1m'));
  lines.push(d('client_body_buffer_size', bare(buf, 'size')), d('client_body_in_single_buffer', 'on'));
  if (r.models === 'route') lines.push(d('set', '$gw_route_mode', 'model'));
  else lines.push(d('set', '$gw_hash_spec', q(hashSpec(upstreamOf(m, r.upstream))!, 'expr')));
  // a catalogue with fallback chains: njs appends the model's chain suffix ($gw_model_chain,
  // fallback.ts) to $gw_route_chain when $gw_route_next is empty, so other routes read nothing more
  if (r.models === 'route' && chainModels(m).length > 0) lines.push(d('set', '$gw_route_next', '""'), d('set', '$gw_route_chain', q(next, 'expr')));
  else lines.push(d('set', '$gw_route_next', q(next, 'expr')));
  return { next, lines, handler: d('js_content', ROUTE_HANDLER) };
}
