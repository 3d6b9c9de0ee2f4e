// API key store and the `keys` command.
import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/commands/keys.ts';
import {
  createKey,
  hashKey,
  KeyStoreError,
  loadKeys,
  md5Key,
  NATIVE_KEY_RE,
  parseKeys,
  parseWhen,
  renderKeyMap,
  renderNativeKeyMaps,
  revokeKey,
  rotateKey,
  serializeKeys,
  type KeyFile,
} from '../../src/keys/store.ts';

let dir: string;
let file: string;
const T0 = new Date('2026-06-01T12:00:00Z');

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'gw-keys-'));
  file = path.join(dir, 'keys.yaml');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(action: string, opts: Record<string, unknown> = {}) {
  let out = '';
  let err = '';
  const code = await run(action, { file, now: T0, stdout: (s) => (out += s), stderr: (s) => (err += s), ...opts });
  return { code, out, err };
}

describe('keys command', () => {
  it('create prints the key once and stores only its hash (mode 0600)', async () => {
    const r = await cli('create', { name: 'alice', role: 'admin', tier: 'gold', expires: '90d' });
    expect(r.code).toBe(0);
    const key = r.out.trim();
    // the key carries its record's id (nginx checks it without njs), then 32 random bytes
    expect(key).toMatch(/^gw_live_[0-9a-f]{12}[A-Za-z0-9_-]{43}$/);
    expect(r.err).toMatch(/shown only once/);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain(key);
    expect(text).not.toContain(key.slice(20));
    expect(text).toContain(hashKey(key));
    expect(text).toContain(`md5: ${JSON.stringify(md5Key(key)).replace(/^"([A-Za-z0-9_][A-Za-z0-9_.-]*)"$/, '$1')}`);
    expect(text).toContain(`id: key_${NATIVE_KEY_RE.exec(key)![1]}`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const data = await loadKeys(file);
    expect(data.keys).toHaveLength(1);
    expect(data.keys[0]).toMatchObject({ name: 'alice', role: 'admin', tier: 'gold', revoked: null, expires: '2026-08-30T12:00:00.000Z' });
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses duplicate active names and invalid labels', async () => {
    expect((await cli('create', { name: 'alice' })).code).toBe(0);
    const dup = await cli('create', { name: 'alice' });
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/already exists/);
    for (const bad of [{ name: 'a b' }, { name: 'x"; }' }, { name: 'ok', role: 'r$' }, { name: 'ok', tier: 'x'.repeat(65) }]) {
      const r = await cli('create', bad);
      expect(r.code, JSON.stringify(bad)).toBe(1);
      expect(r.err).toMatch(/invalid/);
    }
    expect((await cli('create', {})).code).toBe(2);
    expect((await cli('create', { name: 'p', expires: 'yesterday' })).code).toBe(1);
    expect((await cli('create', { name: 'p', expires: '2020-01-01' })).err).toMatch(/past/);
  });

  it('list never shows keys; shows hash prefix and status', async () => {
    const key = (await cli('create', { name: 'alice' })).out.trim();
    await cli('create', { name: 'bob', tier: 'free' });
    await cli('revoke', { target: 'bob' });
    const r = await cli('list');
    expect(r.code).toBe(0);
    expect(r.out).not.toContain(key);
    expect(r.out).toContain(hashKey(key).slice(0, 12));
    expect(r.out).not.toContain(hashKey(key));
    expect(r.out).toMatch(/alice .*active/);
    expect(r.out).toMatch(/bob .*revoked/);
    const j = JSON.parse((await cli('list', { json: true })).out);
    expect(j.map((x: { name: string; status: string }) => `${x.name}:${x.status}`)).toEqual(['alice:active', 'bob:revoked']);
    // a key made before keys carried their id (no md5) is checked by njs: list says so
    const data = await loadKeys(file);
    data.keys[1].md5 = null;
    await writeFile(file, serializeKeys(data));
    expect((await cli('list')).out).toMatch(/alice .*active +nginx/);
    expect((await cli('list')).out).toMatch(/bob .*revoked +njs/);
    expect(JSON.parse((await cli('list', { json: true })).out).map((x: { checkedBy: string }) => x.checkedBy)).toEqual(['nginx', 'njs']);
  });

  it('revoke by name or id; unknown target fails', async () => {
    await cli('create', { name: 'alice' });
    const data = await loadKeys(file);
    expect((await cli('revoke', { target: data.keys[0].id })).code).toBe(0);
    expect((await loadKeys(file)).keys[0].revoked).toBe(T0.toISOString());
    expect((await cli('revoke', { target: 'nobody' })).code).toBe(1);
    expect((await cli('revoke', {})).code).toBe(2);
  });

  it('rotate: new key, old revoked now or kept until the grace time', async () => {
    const k1 = (await cli('create', { name: 'alice', role: 'admin' })).out.trim();
    const r = await cli('rotate', { target: 'alice' });
    expect(r.code).toBe(0);
    const k2 = r.out.trim();
    expect(k2).not.toBe(k1);
    let data = await loadKeys(file);
    expect(data.keys).toHaveLength(2);
    expect(data.keys[0]).toMatchObject({ hash: hashKey(k1), revoked: T0.toISOString(), replacedBy: data.keys[1].id });
    expect(data.keys[1]).toMatchObject({ hash: hashKey(k2), role: 'admin', revoked: null, replacedBy: null });

    const r2 = await cli('rotate', { target: 'alice', graceUntil: '1h' });
    expect(r2.err).toMatch(/stays valid until 2026-06-01T13:00:00.000Z/);
    data = await loadKeys(file);
    expect(data.keys[1].revoked).toBe('2026-06-01T13:00:00.000Z');
    const map = renderKeyMap(data.keys, T0);
    expect(map).toContain(`"${hashKey(k2)}" "alice|admin||${Date.parse('2026-06-01T13:00:00Z') / 1000}";`);
    expect(map).not.toContain(hashKey(k1));
    expect(map).toContain(`"${hashKey(r2.out.trim())}" "alice|admin||0";`);
    expect((await cli('rotate', { target: 'nobody' })).code).toBe(1);
  });

  it('map prints or writes the nginx include', async () => {
    const key = (await cli('create', { name: 'svc.a', tier: 'gold' })).out.trim();
    const r = await cli('map');
    expect(r.out).toContain(`map $gw_key_hash $gw_key_meta {`);
    expect(r.out).toContain(`"${hashKey(key)}" "svc.a||gold|0";`);
    const out = path.join(dir, 'conf.d/keys.map');
    expect((await cli('map', { out })).code).toBe(0);
    expect(await readFile(out, 'utf8')).toBe(r.out);
  });

  it('map writes both views of the store in one include: a revoked key leaves the native maps too', async () => {
    const alice = (await cli('create', { name: 'alice' })).out.trim();
    const bob = (await cli('create', { name: 'bob' })).out.trim();
    await cli('revoke', { target: 'bob' });
    const out = path.join(dir, 'dist', 'keys.map');
    expect((await cli('map', { out })).code).toBe(0);
    const text = await readFile(out, 'utf8');
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    expect(text).toContain(`"${hashKey(alice)}" "alice";`);
    expect(text).toContain(`"${NATIVE_KEY_RE.exec(alice)![1]}" "${md5Key(alice)}";`);
    expect(text).not.toContain(hashKey(bob));
    expect(text).not.toContain(NATIVE_KEY_RE.exec(bob)![1]);
    expect(text.match(/^map /gm)).toHaveLength(5);
    expect((await cli('map')).out).toBe(text);
  });

  it('concurrent creates do not lose updates (lock file)', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => cli('create', { name: `c${i}` })));
    expect(results.map((r) => r.code)).toEqual(Array(8).fill(0));
    expect((await loadKeys(file)).keys.map((k) => k.name).sort()).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7']);
    expect((await readdir(dir)).sort()).toEqual(['keys.yaml']);
  });

  it('unknown action', async () => {
    const r = await cli('frobnicate');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/usage/);
  });
});

describe('keys file loading', () => {
  it('missing file is an empty store', async () => {
    expect(await loadKeys(path.join(dir, 'none.yaml'))).toEqual({ version: 1, keys: [] });
  });

  it('YAML syntax errors carry file:line:col', async () => {
    await writeFile(file, 'version: 1\nkeys:\n  - id: key_000000000001\n    name: [unclosed\n');
    await expect(loadKeys(file)).rejects.toThrow(KeyStoreError);
    const e = (await loadKeys(file).catch((x) => x)) as KeyStoreError;
    expect(e.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
    expect(e.line).toBeGreaterThanOrEqual(4);
    const r = await cli('list');
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${file}:`);
  });

  it('structural errors point at the offending node', () => {
    const good = `version: 1
keys:
  - id: key_000000000001
    name: alice
    hash: ${'a'.repeat(64)}
    created: 2026-01-01T00:00:00Z
`;
    expect(parseKeys(good, 'k.yaml').keys[0].name).toBe('alice');
    const at = (text: string) => {
      try {
        parseKeys(text, 'k.yaml');
      } catch (e) {
        const k = e as KeyStoreError;
        return `${k.line}:${k.col} ${k.message.replace(/^k\.yaml:\d+:\d+: /, '')}`;
      }
      return 'no error';
    };
    expect(at(good.replace('name: alice', 'name: "al ice"'))).toMatch(/^4:11 name "al ice" is not a valid name/);
    expect(at(good.replace('name: alice', 'name: \'x"; } server {\''))).toMatch(/^4:11 name .* is not a valid name/);
    expect(at(good.replace('a'.repeat(64), 'z'.repeat(64)))).toMatch(/^5:11 hash/);
    expect(at(good.replace('version: 1', 'version: 2'))).toMatch(/^1:10 version must be 1/);
    expect(at(good + '    colour: red\n')).toMatch(/^7:5 unknown field "colour"/);
    expect(at(good.replace('    created: 2026-01-01T00:00:00Z\n', ''))).toMatch(/^3:5 missing created/);
    expect(at('- just a list\n')).toMatch(/^1:1 keys file must be a mapping/);
    expect(at(good + good.split('\n').slice(2).join('\n'))).toMatch(/duplicate id/);
    // an md5 line is optional; a malformed one is reported without echoing it
    expect(parseKeys(good.replace('    created:', `    md5: ${'A'.repeat(22)}\n    created:`), 'k.yaml').keys[0].md5).toBe('A'.repeat(22));
    expect(parseKeys(good, 'k.yaml').keys[0].md5).toBeNull();
    const badMd5 = at(good.replace('    created:', '    md5: gw_live_pasted_key_here_by_mistake\n    created:'));
    expect(badMd5).toMatch(/^6:10 md5 is not a base64url md5 digest/);
    expect(badMd5).not.toContain('pasted');
  });

  it('a key without an id of its own keeps its text: no md5 line is written for it', () => {
    const f: KeyFile = { version: 1, keys: [] };
    createKey(f, { name: 'new' }, T0);
    f.keys.push({ ...f.keys[0], id: 'key_00000000000a', name: 'old', md5: null });
    const text = serializeKeys(f);
    expect(text.match(/md5: /g)).toHaveLength(1);
    expect(parseKeys(text, 'k.yaml')).toEqual(f);
  });
});

describe('renderNativeKeyMaps', () => {
  it('maps each active key carrying its id to its MD5 (with its expiry) and, once checked, its identity', () => {
    const f: KeyFile = { version: 1, keys: [] };
    const a = createKey(f, { name: 'alice', role: 'admin', tier: 'gold' }, T0);
    const b = createKey(f, { name: 'bob' }, T0);
    const c = createKey(f, { name: 'carol', expires: new Date(T0.getTime() + 10_000) }, T0);
    const dv = createKey(f, { name: 'dave' }, T0);
    const r = rotateKey(f, 'dave', T0, new Date(T0.getTime() + 60_000));
    revokeKey(f, 'bob', T0);
    f.keys.push({ ...b.record, id: 'key_00000000000b', name: 'olga', revoked: null, md5: null });
    const id = (k: string) => NATIVE_KEY_RE.exec(k)![1];
    const text = renderNativeKeyMaps(f.keys, T0);
    const t0 = Math.floor(T0.getTime() / 1000);
    expect(text).toContain(`"${id(a.key)}" "${md5Key(a.key)}";`);
    expect(text).toContain(`"${id(c.key)}" "${md5Key(c.key)},${t0 + 10}";`);
    // the rotated-out key until its grace period ends, the new one without an end
    expect(text).toContain(`"${id(dv.key)}" "${md5Key(dv.key)},${t0 + 60}";`);
    expect(text).toContain(`"${id(r.key)}" "${md5Key(r.key)}";`);
    // revoked (bob) and without an md5 (olga): nothing, so njs decides
    expect(text).not.toContain(id(b.key));
    expect(text).not.toContain('00000000000b');
    const maps = Object.fromEntries(
      [...text.matchAll(/^map \$(\S+) \$(\S+) \{\n((?:  .*\n)*)\}/gm)].map((m) => [m[2], { from: m[1], body: m[3] }]),
    );
    expect(Object.keys(maps)).toEqual(['gw_key_native_check', 'gw_key_native_client', 'gw_key_native_role', 'gw_key_native_tier']);
    expect(maps.gw_key_native_check.from).toBe('gw_key_native_id');
    // identity only for an id secure_link has checked
    for (const v of ['client', 'role', 'tier']) expect(maps[`gw_key_native_${v}`].from).toBe('gw_key_verified_id');
    expect(maps.gw_key_native_client.body).toContain(`"${id(a.key)}" "alice";`);
    expect(maps.gw_key_native_role.body).toBe(`  default "";\n  "${id(a.key)}" "admin";\n`);
    expect(maps.gw_key_native_tier.body).toBe(`  default "";\n  "${id(a.key)}" "gold";\n`);
    // past carol's expiry she is left out, as in the key map
    expect(renderNativeKeyMaps(f.keys, new Date(T0.getTime() + 20_000))).not.toContain(id(c.key));
  });

  it('refuses values that could inject nginx syntax', () => {
    const f: KeyFile = { version: 1, keys: [] };
    createKey(f, { name: 'alice' }, T0);
    f.keys[0].md5 = 'x" ; } include /etc/passwd; #';
    expect(() => renderNativeKeyMaps(f.keys, T0)).toThrow(/invalid md5/);
    f.keys[0].md5 = 'A'.repeat(22);
    f.keys[0].name = 'x"; }';
    expect(() => renderNativeKeyMaps(f.keys, T0)).toThrow(/invalid name/);
  });
});

describe('renderKeyMap', () => {
  it('excludes revoked and expired keys; sorted, validated output', () => {
    const f: KeyFile = { version: 1, keys: [] };
    const a = createKey(f, { name: 'alice', role: 'admin', tier: 'gold' }, T0);
    const b = createKey(f, { name: 'bob' }, T0);
    const c = createKey(f, { name: 'carol', expires: new Date(T0.getTime() + 1000) }, T0);
    const dv = createKey(f, { name: 'dave' }, T0);
    revokeKey(f, 'bob', T0);
    const later = new Date(T0.getTime() + 5000);
    const text = renderKeyMap(f.keys, later);
    expect(text).toContain(`"${a.record.hash}" "alice|admin|gold|0";`);
    expect(text).not.toContain(b.record.hash);
    expect(text).not.toContain(c.record.hash);
    expect(text).toMatch(/^# Generated/);
    expect(text).toContain('  default "";');
    const atT0 = renderKeyMap(f.keys, T0);
    expect(atT0).toContain(`"${c.record.hash}" "carol|||${Math.floor(T0.getTime() / 1000) + 1}";`);
    // no role, tier or expiry: the client name alone (njs splits one string instead of four)
    expect(atT0).toContain(`"${dv.record.hash}" "dave";`);
  });

  it('refuses values that could inject nginx syntax', () => {
    const f: KeyFile = { version: 1, keys: [] };
    createKey(f, { name: 'alice' }, T0);
    f.keys[0].name = 'x"; } include /etc/passwd; #';
    expect(() => renderKeyMap(f.keys, T0)).toThrow(/invalid name/);
    f.keys[0].name = 'alice';
    f.keys[0].hash = 'ABC';
    expect(() => renderKeyMap(f.keys, T0)).toThrow(/invalid hash/);
  });

  it('rotateKey keeps role/tier/expiry and links old to new', () => {
    const f: KeyFile = { version: 1, keys: [] };
    createKey(f, { name: 'svc', role: 'r', tier: 't', expires: new Date('2027-01-01T00:00:00Z') }, T0);
    const res = rotateKey(f, 'svc', T0, new Date(T0.getTime() + 60_000));
    expect(res.record).toMatchObject({ role: 'r', tier: 't', expires: '2027-01-01T00:00:00.000Z' });
    expect(res.old.replacedBy).toBe(res.record.id);
    expect(() => rotateKey(f, 'svc', T0, new Date(T0.getTime() - 1))).toThrow(/past/);
  });

  it('parseWhen', () => {
    expect(parseWhen('2w', T0).toISOString()).toBe('2026-06-15T12:00:00.000Z');
    expect(parseWhen('2027-01-31', T0).toISOString()).toBe('2027-01-31T00:00:00.000Z');
    expect(() => parseWhen('next tuesday', T0)).toThrow(/invalid date/);
  });
});
