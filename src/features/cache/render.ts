// Body-keyed response caches (`cache.key_includes_body`, idempotent POSTs keyed by the body).
//
// The key carries a SHA-256 digest of the request body, not the body itself: nginx builds
// the cache key inside the proxy_buffer_size buffer (4k by default), so `$request_body` in
// proxy_cache_key stopped caching any body above ~3.9 KB ("proxy_buffer_size 4096 is not
// enough for cache key"). njs computes the digest (`js_set $gw_body_sha256
// gateway.bodyDigest`), evaluated when the proxy module builds the key, after nginx has read
// the whole body into one memory buffer (client_body_buffer_size = the route's max_body,
// client_body_in_single_buffer on, as for the njs body-routing step). When njs cannot read
// the body it returns "" and the request neither uses nor fills the cache.
import type { GatewayModel, Route } from '../../model/types.ts';
import { bare } from '../../plan/quote.ts';
import { d, raw, type Block, type Directive } from '../../plan/directive.ts';

export const BODY_DIGEST_VAR = '$gw_body_sha256';
export const BODY_UNCACHED_VAR = '$gw_body_uncached';
export const BODY_DIGEST_HANDLER = 'gateway.bodyDigest';

export const usesBodyKey = (m: GatewayModel): boolean => m.routes.some((r) => r.cache?.keyIncludesBody);

/** http-level lines and maps for 20-caches.conf (none unless a route keys its cache on the body). */
export function bodyKeyHttp(m: GatewayModel): { lines: Directive[]; blocks: Block[] } {
  if (!usesBodyKey(m)) return { lines: [], blocks: [] };
  return {
    lines: [raw('# SHA-256 (hex) of the request body for body-keyed caches; "" when njs cannot read the body'), d('js_set', BODY_DIGEST_VAR, BODY_DIGEST_HANDLER)],
    blocks: [
      {
        comment: 'no digest, no caching: such a request neither reads nor fills the cache',
        head: `map ${BODY_DIGEST_VAR} ${BODY_UNCACHED_VAR}`,
        lines: [d('""', '1'), d('default', '0')],
      },
    ],
  };
}

/** The proxy_cache_key expression of a route's cache. */
export function cacheKey(bodyKeyed: boolean): string {
  return bodyKeyed ? `$scheme$request_method$host$request_uri|${BODY_DIGEST_VAR}` : '$scheme$request_method$host$request_uri';
}

/** Location lines a body-keyed cache needs besides the key. */
export function bodyKeyLocationLines(r: Route): Directive[] {
  // the whole body in one memory buffer, so njs can digest it (r.requestBuffer)
  const buf = r.maxBody ?? '1m';
  const out = [d('proxy_cache_bypass', BODY_UNCACHED_VAR), d('proxy_no_cache', BODY_UNCACHED_VAR)];
  out.push(d('client_body_buffer_size', bare(buf, 'size')), d('client_body_in_single_buffer', 'on'));
  if (!r.maxBody) out.push(d('client_max_body_size', '1m'));
  return out;
}
