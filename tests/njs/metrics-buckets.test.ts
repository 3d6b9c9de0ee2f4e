// The histogram bucket of a duration (njs/lib/metrics.ts bucketIndex): the default bounds are
// comparisons in code, any other bounds are read from their text. Both must place every time
// where Prometheus's `le` says: the first bound t is at most, else +Inf. Engine-neutral code
// under Node; real nginx and a real Prometheus check the histograms in tests/metrics/.
import { describe, expect, it } from 'vitest';
import { DEFAULT_BUCKETS } from '../../src/features/metrics/index.ts';

// loaded by a computed path: the njs sources bring njs-types into any program importing them by name
const njsLib = (name: string): Promise<Record<string, unknown>> => import(`../../njs/lib/${name}.ts`);
const { bucketIndex, bucketOf } = (await njsLib('metrics')) as Record<'bucketIndex' | 'bucketOf', (bs: string, t: number) => number>;

/** what `le` means: the index of the first bound >= t, or the +Inf bucket */
const expected = (bounds: number[], t: number): number => {
  const i = bounds.findIndex((b) => t <= b);
  return i < 0 ? bounds.length : i;
};

/** every bound, a millisecond (the resolution of $request_time) either side, and far out */
const timesAround = (bounds: number[]): number[] => {
  const ts = [0, 0.001, 1000, 86400];
  for (const b of bounds) ts.push(b, Math.max(0, Number((b - 0.001).toFixed(3))), Number((b + 0.001).toFixed(3)));
  for (let ms = 0; ms <= 61000; ms += 7) ts.push(ms / 1000);
  return ts;
};

describe('histogram buckets', () => {
  it('the default bounds, held as comparisons, place every time as le does', () => {
    for (const t of timesAround(DEFAULT_BUCKETS)) expect([t, bucketIndex('', t)]).toEqual([t, expected(DEFAULT_BUCKETS, t)]);
  });

  it('the default bounds as text place every time alike (the path custom bounds take)', () => {
    const text = DEFAULT_BUCKETS.join(',');
    for (const t of timesAround(DEFAULT_BUCKETS)) expect([t, bucketIndex(text, t)]).toEqual([t, bucketOf(text, t)]);
  });

  it('custom bounds are read from their text', () => {
    const bounds = [0.1, 0.3, 1.5, 7, 120];
    for (const t of timesAround(bounds)) expect([t, bucketIndex(bounds.join(','), t)]).toEqual([t, expected(bounds, t)]);
  });
});
