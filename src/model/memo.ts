// Model-wide derivations computed once per finished model.
//
// Many per-route questions ("does any route reserve token budgets?", "which routes are LLM
// routes?", "which upstreams are managed?") look at the whole model; asked for each of N
// routes they made a build O(N²). The pipeline (src/build/compile.ts) marks the model final
// once nothing changes it any more (after finalize/adapt, before the rules); from then on a
// derivation wrapped in perModel() is computed on first use and kept for that model. A model
// that was never marked final (one being normalized, or built by hand in a test) is never
// cached: every call computes afresh, exactly as an unwrapped function would.
import type { GatewayModel } from './types.ts';

const finalModels = new WeakMap<GatewayModel, Map<unknown, unknown>>();

/** Declare the model final: nothing may change it afterwards (perModel results are kept). */
export function markModelFinal(m: GatewayModel): void {
  if (!finalModels.has(m)) finalModels.set(m, new Map());
}

/**
 * fn, remembered per final model. fn must depend on the model only, and callers must not
 * change what it returns (a cached array or object is shared by every caller).
 */
export function perModel<T>(fn: (m: GatewayModel) => T): (m: GatewayModel) => T {
  return (m) => {
    const cache = finalModels.get(m);
    if (!cache) return fn(m);
    if (cache.has(fn)) return cache.get(fn) as T;
    const v = fn(m);
    cache.set(fn, v);
    return v;
  };
}
