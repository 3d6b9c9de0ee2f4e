// `gatewayctl diff` flags a consistent-hash change that moves clearly more keys than the
// change needs (docs/diff-ci.md): replacing one of three servers moves about half the keys
// on nginx's ring where a third would do. The share is nginx's own placement
// (src/routing/ketama.ts), checked here against 10,000 sampled keys.
import { FEATURES } from '../../src/features/index.ts';
import { describe, expect, it } from 'vitest';
import { excessiveMove, semanticDiff, type Change } from '../../src/diff/semantic.ts';
import { place } from '../../src/routing/ketama.ts';
import { ringFor } from '../../src/routing/explain.ts';
import type { GatewayModel, Upstream } from '../../src/model/types.ts';
import { compileCfg, type Cfg } from './helpers.ts';

function cfg(servers: (string | object)[]): Cfg {
  return {
    version: 1,
    listeners: [{ name: 'public', port: 8080 }],
    upstreams: { sessions: { balance: 'consistent_hash', hash_key: { header: 'X-User' }, servers } },
    limits: { rate: { per_ip: { key: 'client_ip', rate: '10r/s' } } },
    routes: [{ name: 'app', match: { prefix: '/' }, upstream: 'sessions', rate_limits: ['per_ip'] }],
  };
}
const model = (servers: (string | object)[]): GatewayModel => compileCfg(cfg(servers)).model;
const hashChanges = (a: GatewayModel, b: GatewayModel): Change[] => semanticDiff(a, b, FEATURES).filter((c) => c.subject === 'upstream sessions' && /consistent-hash/.test(c.text));

/** Share of 10,000 deterministic keys ("user-0" … "user-9999") whose server nginx changes. */
function sampledMoved(a: Upstream, b: Upstream): number {
  const ra = ringFor(a);
  const rb = ringFor(b);
  let moved = 0;
  const N = 10_000;
  for (let i = 0; i < N; i++) {
    const k = `user-${i}`;
    const sa = place(ra, k).server;
    const sb = place(rb, k).server;
    if ((sa === null ? null : ra.servers[sa].address) !== (sb === null ? null : rb.servers[sb].address)) moved++;
  }
  return moved / N;
}

const pct = (text: string) => Number(/moves ([\d.]+)%/.exec(text)![1]) / 100;

describe('diff: consistent-hash key movement', () => {
  it('flags replacing one of three servers: about half the keys move where a third would do', () => {
    const a = model(['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000']);
    const b = model(['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.9:8000']);
    const [c] = hashChanges(a, b);
    expect(c.risk).toBe('hash-keys-moved');
    expect(c.text).toMatch(/^upstream sessions: moves [\d.]+% of consistent-hash keys to another server; the change needs only 33\.3% \(caches and sessions on the other servers are lost too\)$/);
    const moved = pct(c.text);
    expect(Math.abs(moved - sampledMoved(a.upstreams[0], b.upstreams[0]))).toBeLessThan(0.02);
    expect(moved).toBeGreaterThan(0.333 + 0.0833);
  });

  it('flags replacing one of ten (18% against 10%)', () => {
    const ten = Array.from({ length: 10 }, (_, i) => `10.0.0.${i + 1}:8000`);
    const a = model(ten);
    const b = model([...ten.slice(0, 9), '10.0.0.99:8000']);
    const [c] = hashChanges(a, b);
    expect(c.risk).toBe('hash-keys-moved');
    expect(c.text).toContain('the change needs only 10.0%');
    expect(Math.abs(pct(c.text) - sampledMoved(a.upstreams[0], b.upstreams[0]))).toBeLessThan(0.02);
  });

  it('reports but does not flag adding, removing, reweighting or marking down a server', () => {
    const three = ['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000'];
    const base = model(three);
    const cases: [string, GatewayModel][] = [
      ['add one', model([...three, '10.0.0.4:8000'])],
      ['add three', model([...three, '10.0.0.4:8000', '10.0.0.5:8000', '10.0.0.6:8000'])],
      ['remove one', model(three.slice(0, 2))],
      ['weight 2', model([{ address: '10.0.0.1:8000', weight: 2 }, ...three.slice(1)])],
      ['down', model([{ address: '10.0.0.1:8000', down: true }, ...three.slice(1)])],
    ];
    for (const [name, b] of cases) {
      const cs = hashChanges(base, b);
      expect(cs, name).toHaveLength(1);
      expect(cs[0].risk, `${name}: ${cs[0].text}`).toBeNull();
      expect(Math.abs(pct(cs[0].text) - sampledMoved(base.upstreams[0], b.upstreams[0])), name).toBeLessThan(0.02);
    }
  });

  it('threshold: more than 5 points and more than a quarter above the least movement', () => {
    expect(excessiveMove(0.333 + 0.084, 0.333)).toBe(true);
    expect(excessiveMove(0.333 + 0.08, 0.333)).toBe(false);
    expect(excessiveMove(0.1 + 0.051, 0.1)).toBe(true);
    expect(excessiveMove(0.1 + 0.049, 0.1)).toBe(false);
    expect(excessiveMove(1, 1)).toBe(false);
  });
});
