// Semantic rules for njs-derived hash keys and model-aware routing (codes GW36x).
import type { Report } from '../../core/feature.ts';
import type { GatewayModel, Route } from '../../model/types.ts';
import { routesUsing } from '../../model/routes.ts';
import { MAP_KEYWORDS } from '../../plan/quote.ts';

// nginx `map` keywords: a model id spelled like one would not be a plain key.
const BODYLESS = ['GET', 'HEAD', 'DELETE', 'OPTIONS'];

/** True when the route authenticates (with `method`: when that method is among its auth methods). */
function hasAuth(r: Route, method?: 'jwt'): boolean {
  if (!r.auth) return false;
  return method === undefined || r.auth.methods.includes(method);
}

export function checkRoutingRules(m: GatewayModel, err: Report, warn: Report): void {
  const list = (xs: string[]) => (xs.length ? xs.join(', ') : 'none');
  const upstreamNames = m.upstreams.map((u) => u.name);

  // the model catalogue
  const seen = new Map<string, number>();
  for (const [i, e] of m.models.entries()) {
    const p = `models[${i}]`;
    // (pools: and fallback upstreams: placement-rules.ts)
    if (e.pools.length === 1 && e.pools[0].upstream === e.upstream && !upstreamNames.includes(e.upstream)) err('GW360', e.at, `${p}.upstream`, `unknown upstream "${e.upstream}" for model ${e.id} (defined: ${list(upstreamNames)})`);
    const k = e.id.toLowerCase(); // nginx map keys are case-insensitive
    if (seen.has(k)) err('GW361', e.at, `${p}.id`, `duplicate model id "${e.id}" (also models[${seen.get(k)}]; ids are compared case-insensitively)`);
    seen.set(k, i);
    if (MAP_KEYWORDS.includes(k)) err('GW361', e.at, `${p}.id`, `model id "${e.id}" is reserved (nginx map keyword)`);
  }

  for (const r of m.routes) {
    const p = `routes[${r.index}]`;
    if (r.models === null) continue;
    if (!m.models.length) err('GW362', r.at, `${p}.models`, `models: ${r.models} needs a top-level models: list`);
    if (r.upstream !== null || r.respond !== null) {
      err('GW363', r.at, `${p}.models`, `models: ${r.models} replaces upstream and respond; remove ${r.upstream !== null ? 'upstream' : 'respond'}`);
    }
    if (r.models === 'route' && r.match.methods && r.match.methods.every((x) => BODYLESS.includes(x))) {
      err('GW364', r.at, `${p}.match.methods`, 'models: route reads `model` from the JSON request body; the route only accepts methods without a body');
    }
    if (r.models === 'route' && (r.websocket || r.cache || r.rewrite.stripPrefix || r.rewrite.replacePath)) {
      const what = r.websocket ? 'websocket' : r.cache ? 'cache' : 'strip_prefix/rewrite';
      err('GW364', r.at, `${p}.models`, `models: route cannot be combined with ${what} (the request goes to the model's upstream as it came)`);
    }
    if (r.models === 'list' && (r.streaming || r.websocket || r.cache || r.retries)) {
      err('GW364', r.at, `${p}.models`, 'models: list is answered by the gateway itself (no streaming, websocket, cache or retries)');
    }
  }

  for (const u of m.upstreams) {
    const k = u.hashKey;
    if (u.balance !== 'consistent_hash' || !k) continue;
    const p = `upstreams.${u.name}.hash_key`;
    const users = routesUsing(m, u.name);
    if (k.kind === 'body_field' || k.kind === 'prompt_prefix') {
      for (const r of users.filter((x) => x.models !== 'route')) {
        // (model routes: GW364 already covers bodyless methods)
        if ((r.match.methods && r.match.methods.every((x) => BODYLESS.includes(x))) || r.websocket) {
          err('GW365', r.at, `routes[${r.index}]${r.websocket ? '.websocket' : '.match.methods'}`, `upstream ${u.name} hashes on ${k.kind === 'body_field' ? `body field "${k.name}"` : 'the prompt prefix'}, but route ${r.name} ${r.websocket ? 'is a websocket route' : `only accepts ${r.match.methods!.join(', ')} (no request body)`}`);
        }
        if (r.cache) err('GW365', r.at, `routes[${r.index}].cache`, `upstream ${u.name} hashes on a body field; route ${r.name} cannot also be cached`);
      }
    }
    if (k.kind === 'client_id' || k.kind === 'jwt_claim') {
      const what = k.kind === 'client_id' ? 'client_id' : `jwt_claim ${k.name}`;
      for (const r of users) {
        if (!hasAuth(r, k.kind === 'jwt_claim' ? 'jwt' : undefined)) {
          const missing = k.kind === 'jwt_claim' && r.auth ? 'does not accept JWTs' : 'has no auth';
          warn('GW366', u.at, p, `hash key ${what} needs ${k.kind === 'jwt_claim' ? 'JWT ' : ''}authentication: route ${r.name} ${missing}, so its requests always use hash_fallback`);
        }
      }
    }
  }
}
