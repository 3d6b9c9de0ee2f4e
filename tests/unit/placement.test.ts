// The pure parts of model placement (src/routing/placement.ts): the $request_time comparison the
// fallback deadline is rendered as (checked against numbers, exhaustively near the edges), the
// chain of a model, and its statuses.
import { describe, expect, it } from 'vitest';
import { atLeastMsRegex, deadlineMs, fallbackStatuses } from '../../src/routing/placement.ts';
import type { ModelEntry } from '../../src/model/types.ts';

/** nginx's $request_time: seconds with three decimals */
const requestTime = (ms: number) => `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;

describe('fallback deadline as a regex over $request_time', () => {
  it('matches exactly the times at least the deadline', () => {
    const deadlines = [1, 9, 10, 99, 100, 999, 1000, 1001, 1500, 1999, 2000, 9999, 10000, 20000, 59999, 60000, 123456, 3600000];
    for (const d of deadlines) {
      const re = new RegExp(atLeastMsRegex(d));
      const samples = new Set<number>([0, 1, 5, 999, 1000, 1001, 99999, 1000000, 10_000_000]);
      for (let x = Math.max(0, d - 1200); x <= d + 1200; x++) samples.add(x);
      for (const x of samples) expect(re.test(requestTime(x)), `deadline ${d} ms, $request_time ${requestTime(x)}`).toBe(x >= d);
    }
  });

  it('reads ms, s and m', () => {
    expect([deadlineMs('1500ms'), deadlineMs('30s'), deadlineMs('2m')]).toEqual([1500, 30000, 120000]);
  });
});

describe('fallback statuses', () => {
  const entry = (on: string[] | null): ModelEntry => ({
    id: 'm',
    upstream: 'a',
    pools: [{ upstream: 'a', weight: null }],
    fallback: on === null ? null : { to: [], on, deadline: null, at: { file: 'g.yaml', line: 1, col: 1, path: 'models[0]' } },
    ownedBy: 'x',
    created: 0,
    at: { file: 'g.yaml', line: 1, col: 1, path: 'models[0]' },
  });
  it('error is 502 and timeout 504, once each; the default is error and timeout', () => {
    expect(fallbackStatuses(entry(null))).toEqual([502, 504]);
    expect(fallbackStatuses(entry(['429', 'error', '502', '503']))).toEqual([429, 502, 503]);
  });
});
