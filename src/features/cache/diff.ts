// The cache feature's part of `gatewayctl diff`: cache zones added, removed or changed.
import type { CacheZone } from '../../model/types.ts';
import type { DiffSink } from '../../diff/types.ts';
import { byName, deepDiff, fieldText, names } from '../../diff/semantic.ts';

export function diffCaches(c: DiffSink, as: CacheZone[], bs: CacheZone[]): void {
  const a = byName(as);
  const b = byName(bs);
  const text = (z: CacheZone) => `size ${z.size}${z.maxSize ? `, max_size ${z.maxSize}` : ''}, inactive ${z.inactive}, path ${z.path}`;
  for (const n of names(as, bs)) {
    const za = a.get(n);
    const zb = b.get(n);
    const s = `cache ${n}`;
    if (!za && zb) c.add('caches', 'added', s, `cache ${n} added: ${text(zb)}`);
    else if (za && !zb) c.add('caches', 'removed', s, `cache ${n} removed (was ${text(za)})`);
    else if (za && zb) for (const f of deepDiff({ ...za, name: null }, { ...zb, name: null })) c.add('caches', 'changed', s, `${s}: ${fieldText(f)}`);
  }
}

