// nginx's consistent-hash placement (src/routing/ketama.ts): CRC-32, ring construction and
// lookup. Agreement with real nginx is proven in hash-nginx.test.ts.
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { buildRing, crc32, findPoint, movedShare, place, shares, splitServer } from '../../src/routing/ketama.ts';

describe('crc32', () => {
  it('is the IEEE CRC-32 nginx uses (ngx_crc32_long)', () => {
    expect(crc32('')).toBe(0);
    expect(crc32('123456789')).toBe(0xcbf43926); // the standard check value
    for (const s of ['alice', 'user-42', 'ünïcödé', 'x'.repeat(1000)]) expect(crc32(s)).toBe(zlibCrc32(Buffer.from(s)));
  });
});

describe('ring', () => {
  it('splits server strings like nginx', () => {
    expect(splitServer('127.0.0.1:9001')).toEqual({ host: '127.0.0.1', port: '9001' });
    expect(splitServer('backend.internal:80')).toEqual({ host: 'backend.internal', port: '80' });
    expect(splitServer('backend.internal')).toEqual({ host: 'backend.internal', port: '' });
    expect(splitServer('unix:/run/app.sock')).toEqual({ host: '/run/app.sock', port: '' });
    expect(splitServer('[::1]:8080')).toEqual({ host: '[::1]', port: '8080' });
  });

  it('has 160 points per weight unit, sorted, and the first point is crc32(host \\0 port prev=0)', () => {
    const ring = buildRing([
      { address: '10.0.0.1:80', weight: 1 },
      { address: '10.0.0.2:80', weight: 3 },
    ]);
    expect(ring.points.length).toBe(640);
    for (let i = 1; i < ring.points.length; i++) expect(ring.points[i].hash).toBeGreaterThan(ring.points[i - 1].hash);
    const first = crc32(Buffer.concat([Buffer.from('10.0.0.1'), Buffer.from([0]), Buffer.from('80'), Buffer.alloc(4)]));
    expect(ring.points.some((p) => p.hash === first && p.server === 0)).toBe(true);
  });

  it('finds the first point >= the hash and wraps around', () => {
    const ring = buildRing([{ address: 'a:1', weight: 1 }, { address: 'b:1', weight: 1 }]);
    const last = ring.points[ring.points.length - 1].hash;
    expect(findPoint(ring, 0)).toBe(0);
    expect(findPoint(ring, ring.points[5].hash)).toBe(5);
    expect(findPoint(ring, ring.points[5].hash + 1)).toBe(6);
    expect(findPoint(ring, last + 1)).toBe(ring.points.length); // wraps to point 0
  });

  it('orders every server for a key and skips down/unavailable ones like nginx', () => {
    const servers = [
      { address: '10.0.0.1:80', weight: 1 },
      { address: '10.0.0.2:80', weight: 1 },
      { address: '10.0.0.3:80', weight: 1 },
    ];
    const ring = buildRing(servers);
    const p = place(ring, 'user-7');
    expect(new Set(p.order.map((o) => o.server)).size).toBe(3);
    const dead = place(ring, 'user-7', new Set([p.order[0].server]));
    expect(dead.server).toBe(p.order[1].server);
    expect(dead.skipped).toEqual([{ server: p.order[0].server, point: p.order[0].point, reason: 'unavailable' }]);
    const downRing = buildRing(servers.map((s, i) => ({ ...s, down: i === p.order[0].server })));
    expect(place(downRing, 'user-7').server).toBe(p.order[1].server);
  });

  it('removing a server moves only its keys; weights shift shares proportionally', () => {
    const four = buildRing([1, 2, 3, 4].map((i) => ({ address: `10.0.0.${i}:80`, weight: 1 })));
    const three = buildRing([1, 2, 3].map((i) => ({ address: `10.0.0.${i}:80`, weight: 1 })));
    let moved = 0;
    for (let i = 0; i < 5000; i++) {
      const a = place(four, `k${i}`).server!;
      const b = place(three, `k${i}`).server!;
      if (a !== 3) expect(b).toBe(a);
      else moved++;
    }
    expect(moved / 5000).toBeGreaterThan(0.15);
    expect(moved / 5000).toBeLessThan(0.35);
    const weighted = shares(buildRing([{ address: '10.0.0.1:80', weight: 1 }, { address: '10.0.0.2:80', weight: 3 }]));
    expect(weighted[0] + weighted[1]).toBeCloseTo(1, 9);
    expect(weighted[1] / weighted[0]).toBeGreaterThan(2.3);
    expect(weighted[1] / weighted[0]).toBeLessThan(3.9);
  });
});

describe('movedShare', () => {
  const ring = (xs: [number, number, boolean?][]) => buildRing(xs.map(([i, w, down]) => ({ address: `10.0.0.${i}:80`, weight: w, down })));
  const sampled = (a: ReturnType<typeof buildRing>, b: ReturnType<typeof buildRing>) => {
    let moved = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const key = `key-${i}`;
      if (a.servers[place(a, key).server!].address !== b.servers[place(b, key).server!].address) moved++;
    }
    return moved / n;
  };

  it('is the exact share of keys that change server (agrees with sampling)', () => {
    const four = ring([[1, 1], [2, 1], [3, 1], [4, 1]]);
    const cases: [ReturnType<typeof buildRing>, ReturnType<typeof buildRing>][] = [
      [four, ring([[1, 1], [2, 1], [3, 1]])], // remove one
      [four, ring([[1, 1], [2, 1], [3, 1], [4, 1], [5, 1]])], // add one
      [four, ring([[1, 1], [2, 1], [3, 1], [4, 3]])], // reweight
      [four, ring([[1, 1], [2, 1], [3, 1], [4, 1, true]])], // mark down
    ];
    for (const [a, b] of cases) expect(Math.abs(movedShare(a, b) - sampled(a, b))).toBeLessThan(0.015);
    expect(movedShare(four, four)).toBe(0);
    // removing a server moves exactly its share
    expect(movedShare(four, ring([[1, 1], [2, 1], [3, 1]]))).toBeCloseTo(shares(four)[3], 9);
  });
});
