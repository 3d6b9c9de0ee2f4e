// The auth feature's part of `gatewayctl diff`: the top-level auth configuration (a route's
// own auth is diffed with the route); removing it is flagged.
import type { DiffSink } from '../../diff/types.ts';
import { claimValuesLoosened, deepDiff, fieldText, fmt, hasAuth, same } from '../../diff/semantic.ts';

export function diffModelAuth(c: DiffSink, before: unknown, after: unknown): void {
  // whether the key store holds keys nginx checks itself is the store's data, not configuration
  const a = withoutStoreFacts(before);
  const b = withoutStoreFacts(after);
  if (same(a, b)) return;
  if (hasAuth(a) && !hasAuth(b)) {
    c.add('auth', 'removed', 'auth', 'auth configuration removed (clients are no longer authenticated)', 'auth-removed');
    return;
  }
  if (!hasAuth(a) && hasAuth(b)) {
    c.add('auth', 'added', 'auth', `auth configured (${fmt(b)})`);
    return;
  }
  for (const f of deepDiff(a, b, 'auth')) {
    // a provider's required claim values loosened: tokens refused before (refresh tokens) may pass
    if (/^auth\.jwt\[[^\]]+\]\.claim_values$/.test(f.path) && claimValuesLoosened(f.before, f.after)) {
      c.add('auth', 'changed', 'auth', `required claim values loosened or removed (tokens refused before may now pass): ${fieldText(f)}`, 'auth-weakened');
    } else c.add('auth', 'changed', 'auth', fieldText(f));
  }
}

function withoutStoreFacts(x: unknown): unknown {
  const auth = x as { apiKeys?: { nativeLane?: boolean } | null } | null | undefined;
  if (!auth?.apiKeys || !('nativeLane' in auth.apiKeys)) return x;
  const { nativeLane: _, ...apiKeys } = auth.apiKeys;
  return { ...auth, apiKeys };
}
