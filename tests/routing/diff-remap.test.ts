// `gatewayctl diff` says how many consistent-hash keys a server change moves (src/routing).
import { FEATURES } from '../../src/features/index.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { semanticDiff } from '../../src/diff/semantic.ts';
import { keysMovedShare } from '../../src/routing/explain.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'gw-remap-'));
function model(servers: string, key = '{ header: X-User }') {
  const f = path.join(dir, `g${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    f,
    `version: 1
listeners: [{ name: public, port: 8080 }]
upstreams:
  sessions: { balance: consistent_hash, hash_key: ${key}, servers: [${servers}] }
routes: [{ match: { prefix: / }, upstream: sessions }]
`,
  );
  const r = compile(f);
  expect(r.ok, JSON.stringify(r.diagnostics)).toBe(true);
  return r.model!;
}

describe('consistent-hash remapping in the semantic diff', () => {
  it('reports the share of keys a server removal moves', () => {
    const a = model('10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80, 10.0.0.4:80');
    const b = model('10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80');
    const share = keysMovedShare(a.upstreams[0], b.upstreams[0])!;
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThan(0.4);
    const texts = semanticDiff(a, b, FEATURES).map((c) => c.text);
    expect(texts).toContain(`upstream sessions: moves ${(share * 100).toFixed(1)}% of consistent-hash keys to another server`);
  });

  it('says nothing about remapping when the hash key itself changes or nothing moves', () => {
    const a = model('10.0.0.1:80, 10.0.0.2:80');
    expect(keysMovedShare(a.upstreams[0], model('10.0.0.1:80, 10.0.0.2:80', '{ body_field: user }').upstreams[0])).toBeNull();
    expect(keysMovedShare(a.upstreams[0], model('10.0.0.1:80, 10.0.0.2:80').upstreams[0])).toBe(0);
  });
});
