// Response caches: zones in conf.d/20-caches.conf; per route TTLs by status, methods, a bypass
// header, locking, stale answers on upstream errors, and idempotent POSTs keyed by body.
import type { Feature } from '../../core/feature.ts';
import { d, type Directive } from '../../plan/directive.ts';
import type { SourcePos } from '../../model/types.ts';
import { bare, headerVar, ident, q } from '../../plan/quote.ts';
import { diffCaches } from './diff.ts';
import { BODY_DIGEST_HANDLER, bodyKeyHttp, bodyKeyLocationLines, cacheKey } from './render.ts';
import { cacheSchema } from './schema.ts';

export const cacheFeature: Feature = {
  name: 'cache',
  summary: 'proxy caches per route, with X-Cache-Status',
  schema: cacheSchema,
  cost: {
    njsCalls: (r) => (r.cache?.keyIncludesBody ? 1 : 0), // js_set $gw_body_sha256 when the key is built
    measured: 'nginx proxy_cache; body-keyed: one js_set digest of the body',
  },
  njs: [{ handler: BODY_DIGEST_HANDLER, phase: 'js_set', used: (m) => m.routes.some((r) => !!r.cache?.keyIncludesBody) }],
  needsNjs: (m) => m.routes.some((r) => r.cache?.keyIncludesBody), // body digest for the cache key
  buffersBody: (r) => !!r.cache?.keyIncludesBody,
  diff: (a, b, c) => diffCaches(c, a.caches, b.caches), // njs digests the body (r.requestBuffer)
  http: (m) => {
    const zone = (c: (typeof m.caches)[number]): Directive => {
      const parts = [
        'proxy_cache_path',
        q(c.path, 'file'),
        'levels=1:2',
        `keys_zone=gw_cache_${ident(c.name)}:${bare(c.size, 'size')}`,
        `inactive=${bare(c.inactive, 'duration')}`,
        'use_temp_path=off',
      ];
      if (c.maxSize) parts.splice(4, 0, `max_size=${bare(c.maxSize, 'size')}`);
      return d(...parts);
    };
    return {
      cacheMaps: bodyKeyHttp(m).blocks,
      caches: m.caches.map(zone).concat(bodyKeyHttp(m).lines),
      origins: m.caches.map((c): [Directive, SourcePos] => [zone(c), c.at]),
    };
  },
  routeResponseHeaders: (ctx) => (ctx.route.cache ? [d('add_header', 'X-Cache-Status', '$upstream_cache_status', 'always')] : []),
  route(ctx) {
    const { route: r } = ctx;
    if (!r.cache || ctx.content?.kind !== 'proxy') return;
    const c = ctx.slots.cache;
    const cache = r.cache;
    c.push(d('proxy_cache', `gw_cache_${ident(cache.zone)}`));
    c.push(d('proxy_cache_key', q(cacheKey(cache.keyIncludesBody), 'expr')));
    c.push(d('proxy_cache_methods', ...cache.methods.map((x) => bare(x, 'method'))));
    for (const t of cache.ttl) c.push(d('proxy_cache_valid', bare(t.status, 'status'), bare(t.time, 'duration')));
    if (cache.bypassHeader) {
      c.push(d('proxy_cache_bypass', headerVar(cache.bypassHeader)));
      c.push(d('proxy_no_cache', headerVar(cache.bypassHeader)));
    }
    if (cache.lock) c.push(d('proxy_cache_lock', 'on'));
    c.push(d('proxy_cache_use_stale', 'error', 'timeout', 'updating', 'http_502', 'http_503', 'http_504'));
    if (cache.keyIncludesBody) c.push(...bodyKeyLocationLines(r)); // key on a digest of the body (render.ts)
  },
};
