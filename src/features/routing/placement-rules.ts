// Rules of model placement and fallbacks (pools:, fallback:): codes GW460–GW465, and GW360
// (unknown upstream) for the pools and upstream targets as for `upstream:`. GW465 warns where a
// server in several upstreams of one chain cannot have one failure record: the gateway's
// circuit breaker record is shared by upstreams with the same circuit_breaker
// (src/routing/placement.ts breakerRecords); nginx's own max_fails never is.
import type { Report } from '../../core/feature.ts';
import type { GatewayModel } from '../../model/types.ts';
import { breakerSharing, findModel, modelChain, sharedServers } from '../../routing/placement.ts';
import { hashSpec } from './render.ts';

/** nginx allows 10 internal redirects per request; the body step, the hand-over and the error pages of a chain use one each. */
export const MAX_STAGES = 6;

export function checkPlacementRules(m: GatewayModel, err: Report, warn: Report): void {
  const names = m.upstreams.map((u) => u.name);
  const defined = names.join(', ') || 'none';
  for (const [i, e] of m.models.entries()) {
    const p = `models[${i}]`;
    if (e.upstreamAndPools) err('GW460', e.at, `${p}.pools`, `model ${e.id} has both upstream: and pools:; give one (pools: [${e.upstream}, …] lists the first pool too)`);
    const viaPools = !(e.pools.length === 1 && e.pools[0].upstream === e.upstream && e.pools[0].weight === null);
    if (viaPools) {
      e.pools.forEach((x, j) => {
        if (!names.includes(x.upstream)) err('GW360', e.at, `${p}.pools[${j}]`, `unknown upstream "${x.upstream}" for model ${e.id} (defined: ${defined})`);
        if (e.pools.findIndex((y) => y.upstream === x.upstream) < j) err('GW462', e.at, `${p}.pools[${j}]`, `upstream ${x.upstream} is listed twice in the pools of model ${e.id}`);
      });
      const weighted = e.pools.filter((x) => x.weight !== null).length;
      if (weighted && weighted < e.pools.length) err('GW462', e.at, `${p}.pools`, `give every pool of model ${e.id} a weight (weighted split) or none (ordered)`);
    }
    const f = e.fallback;
    f?.to.forEach((t, j) => {
      const at = `${p}.fallback.to[${j}]`;
      if (t.kind === 'upstream') {
        if (!names.includes(t.name)) err('GW360', f!.at, `${at}.upstream`, `unknown upstream "${t.name}" for model ${e.id}'s fallback (defined: ${defined})`);
        else if (e.pools.some((x) => x.upstream === t.name)) err('GW462', f!.at, `${at}.upstream`, `upstream ${t.name} already serves model ${e.id} (pools are tried before the fallback)`);
        return;
      }
      const y = findModel(m, t.id);
      if (!y) err('GW461', f!.at, `${at}.model`, `unknown model "${t.id}" (not in the catalogue)`);
      else if (y === e) err('GW461', f!.at, `${at}.model`, `model ${e.id} cannot fall back to itself`);
    });
    const chain = modelChain(m, e);
    if (chain.length < 2) continue;
    const where = f ? `${p}.fallback` : `${p}.pools`;
    if (chain.length > MAX_STAGES) err('GW463', f?.at ?? e.at, where, `model ${e.id} has ${chain.length} pools and fallbacks to try; at most ${MAX_STAGES} (nginx limits the internal redirects of one request)`);
    const ups = [...new Set(chain.flatMap((s) => s.upstreams))].filter((u) => names.includes(u));
    const specs = [...new Set(ups.map((u) => hashSpec(m.upstreams.find((x) => x.name === u))).filter((s) => s !== null))];
    if (specs.length > 1) err('GW464', f?.at ?? e.at, where, `the upstreams model ${e.id} may reach hash on different keys njs derives (${specs.join(', ')}); njs derives one key per request`);
    for (const [addr, pools] of sharedServers(m, ups)) {
      const why = unsharedWhy(m, addr, [...new Set(pools)]);
      if (why !== null) warn('GW465', f?.at ?? e.at, where, `server ${addr} is in upstreams ${and([...new Set(pools)])}, which cannot share its failure record: ${why}`);
    }
  }
}

const and = (xs: string[]): string => (xs.length < 3 ? xs.join(' and ') : `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`);

/** Why a server the upstreams share cannot have one breaker record among them; null when it has one. */
function unsharedWhy(m: GatewayModel, addr: string, pools: string[]): string | null {
  const { groups, without } = breakerSharing(m, addr, pools);
  if (without.length === 0 && groups.length === 1) return null;
  const reasons: string[] = [];
  const shared = groups.filter((g) => g.upstreams.length > 1);
  if (without.length) reasons.push(`${and(without)} ${without.length > 1 ? 'have' : 'has'} no circuit_breaker (nginx keeps its own max_fails record per upstream block)`);
  if (groups.length > 1) reasons.push(`their circuit_breaker settings differ (${groups.map((g) => `${and(g.upstreams)}: ${g.settings}`).join('; ')})`);
  const partly = shared.length ? `; ${shared.map((g) => and(g.upstreams)).join(', ')} share one breaker record` : '';
  return `${reasons.join(', and ')}${partly}; give each of them the same circuit_breaker to share one breaker record, so a failure seen through one takes the server out of all (docs/routing.md, Placement and fallbacks)`;
}
