// API keys and routes at scale: the keys store's line scanner (the fast path of parseKeys)
// reads exactly what the YAML parser reads, hand edits still get positioned errors, a large
// store and a many-route config build within a bounded heap, and a key from the large store
// authenticates on real nginx. No timings are asserted (scripts/scale.ts prints those).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createKey, loadKeys, parseKeys, saveKeys, scanKeys, serializeKeys, type ApiKeyRecord, type KeyFile } from '../../src/keys/store.ts';
import { generateScaleKeys, scaleConfig, scaleKey } from '../../scripts/scale-fixtures.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { withErrorLog } from '../support/nginx.ts';
import { freePort } from '../support/ports.ts';
import { request } from '../support/http.ts';
import { closeAll, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';

const root = path.resolve(import.meta.dirname, '../..');
const now = new Date('2026-06-01T00:00:00Z');

/** The records as the yaml package reads the text (the reference the scanner must agree with). */
function viaYaml(text: string): unknown {
  return parseYaml(text);
}

describe('keys store line scanner', () => {
  // labels YAML's core schema would read as numbers, booleans or null unless quoted
  const tricky = ['true', 'False', 'NULL', 'null', '1e3', '1E-3', '12', '0x1F', '0o17', '12_3', '1.', '.5', 'a.b', 'x-1', '_', 'inf', 'nan', 'y', 'n', 'no', 'on'];

  it('reads what the YAML parser reads, for every value the writer can produce', () => {
    const f: KeyFile = { version: 1, keys: [] };
    for (const [i, name] of tricky.entries()) createKey(f, { name, role: tricky[(i + 3) % tricky.length], tier: i % 2 ? tricky[(i + 7) % tricky.length] : undefined }, now);
    // hashes that are all digits, or digits around one `e`, are numbers to YAML when plain
    f.keys[0].hash = '1'.repeat(64);
    f.keys[1].hash = `${'2'.repeat(30)}e${'3'.repeat(33)}`;
    f.keys[2].revoked = now.toISOString();
    f.keys[2].replacedBy = f.keys[3].id;
    f.keys[4].expires = '2030-01-01T00:00:00.000Z';
    const text = serializeKeys(f);
    const scanned = scanKeys(text);
    expect(scanned).not.toBeNull(); // the writer's own layout takes the fast path
    expect(scanned).toEqual(viaYaml(text));
    expect(scanned!.keys).toEqual(f.keys);
    expect(parseKeys(text, 'k.yaml')).toEqual(scanned);
  });

  it('saveKeys writes a large store in pieces that read back as the same keys', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatewayctl-keys-'));
    try {
      const { records } = generateScaleKeys(path.join(dir, 'gen.yaml'), 4500);
      const file = path.join(dir, 'keys.yaml');
      await saveKeys(file, { version: 1, keys: records });
      const text = readFileSync(file, 'utf8');
      expect(text).toBe(serializeKeys({ version: 1, keys: records }));
      expect(text).toBe(readFileSync(path.join(dir, 'gen.yaml'), 'utf8'));
      expect((await loadKeys(file)).keys).toEqual(records);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the empty store round-trips', () => {
    const text = serializeKeys({ version: 1, keys: [] });
    expect(parseKeys(text, 'k.yaml')).toEqual({ version: 1, keys: [] });
    expect(viaYaml(text)).toEqual({ version: 1, keys: [] });
  });

  it('leaves other YAML styles to the YAML parser, with the same result', () => {
    const f: KeyFile = { version: 1, keys: [] };
    createKey(f, { name: 'alice', role: 'admin' }, now);
    createKey(f, { name: 'bob' }, now);
    const canonical = serializeKeys(f);
    const variants = [
      // a flow mapping per key
      `version: 1\nkeys:\n${f.keys.map((k) => `  - { id: ${k.id}, name: ${k.name}, hash: "${k.hash}", role: "${k.role}", tier: "", created: ${k.created} }`).join('\n')}\n`,
      // a comment after a value, single quotes, keys at column 0
      canonical.replace('name: alice', "name: 'alice' # ops"),
      canonical.replace(/^ {2}- /gm, '- ').replace(/^ {4}/gm, '  '),
      // a plain `.` or `~` the scanner does not read itself
      canonical.replace('role: ""', 'role: ~'),
      canonical + '...\n',
    ];
    for (const text of variants) {
      expect(scanKeys(text)).toBeNull();
      const keys = parseKeys(text, 'k.yaml').keys;
      expect(keys.map((k) => [k.id, k.name, k.hash, k.role])).toEqual(f.keys.map((k) => [k.id, k.name, k.hash, k.role]));
    }
  });

  it('a hand edit with a problem is reported at its line and column, among thousands of keys', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatewayctl-keys-'));
    try {
      const file = path.join(dir, 'keys.yaml');
      const { records } = generateScaleKeys(file, 5000);
      const lines = readFileSync(file, 'utf8').split('\n');
      const at = lines.indexOf(`    hash: ${records[4321].hash}`);
      expect(at).toBeGreaterThan(0);
      const cases: [string, RegExp][] = [
        [`    hash: ${KEYLIKE}`, new RegExp(`^k\\.yaml:${at + 1}:11: hash is not a lowercase sha256 hex digest$`)],
        [`    hash: ${records[4321].hash}\n    colour: blue`, new RegExp(`^k\\.yaml:${at + 2}:5: unknown field "colour"$`)],
      ];
      for (const [line, re] of cases) {
        const edited = [...lines.slice(0, at), line, ...lines.slice(at + 1)].join('\n');
        expect(scanKeys(edited)).toBeNull();
        let err: Error | null = null;
        try {
          parseKeys(edited, 'k.yaml');
        } catch (e) {
          err = e as Error;
        }
        expect(err?.message).toMatch(re);
        expect(err?.message).not.toContain(KEYLIKE);
      }
      // duplicate ids are refused on both paths
      const dupe = lines.join('\n').replace(`id: ${records[10].id}`, `id: ${records[11].id}`);
      expect(scanKeys(dupe)).toBeNull();
      expect(() => parseKeys(dupe, 'k.yaml')).toThrow(new RegExp(`duplicate id ${records[11].id}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
const KEYLIKE = 'gw_live_pastedPlaintextKeyNotAHash0123456789abcdef';

describe('20,000 keys and 300 routes', () => {
  const N = 20_000;
  let dir: string;
  let records: ApiKeyRecord[];
  let sample: { key: string; name: string };
  let project: Project | undefined;
  let ups: EchoUpstream[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'gatewayctl-scale-'));
    ({ records, sample } = generateScaleKeys(path.join(dir, 'keys.yaml'), N));
  });
  afterAll(async () => {
    await project?.stop();
    await closeAll(ups);
    rmSync(dir, { recursive: true, force: true });
  });

  it('the CLI builds them with a 96 MiB heap: one map entry per active key, sorted, one location per route', () => {
    writeFileSync(path.join(dir, 'gateway.yaml'), scaleConfig({ routes: 300, upstreams: 60, port: 18080, apiKeys: true }));
    // the YAML-tree parse this replaced needed some 300 MiB of heap for 20,000 keys
    const r = spawnSync(process.execPath, ['--max-old-space-size=96', path.join(root, 'bin/gatewayctl.js'), 'build', '-c', 'gateway.yaml', '-o', 'dist'], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.stderr).not.toMatch(/heap out of memory/);
    expect(r.status, r.stderr).toBe(0);
    const map = readFileSync(path.join(dir, 'dist/conf.d/keys.map'), 'utf8');
    const entries = map.split('\n').filter((l) => /^ {2}"[0-9a-f]{64}" /.test(l));
    expect(entries.length).toBe(N);
    const hashes = entries.map((l) => l.slice(3, 67));
    expect(hashes).toEqual([...records.map((k) => k.hash)].sort());
    // every key carries its id: one entry per key in the native lane's check and client maps too
    expect(map.split('\n').filter((l) => /^ {2}"[0-9a-f]{12}" "[A-Za-z0-9_-]{22}(,\d+)?";$/.test(l)).length).toBe(N);
    expect(map.split('\n').filter((l) => /^ {2}"[0-9a-f]{12}" "client-\d+";$/.test(l)).length).toBe(N);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'dist/manifest.json'), 'utf8'));
    expect(manifest.routes).toHaveLength(300);
    const conf = readFileSync(path.join(dir, 'dist/nginx.conf'), 'utf8');
    expect(conf).toMatch(/map_hash_bucket_size \d+;/);
  });

  it('on real nginx a key from the middle of the store authenticates; an unknown one does not', async () => {
    ups = await startUpstreams(1);
    const port = await freePort();
    const yaml = scaleConfig({ routes: 300, upstreams: 60, port, apiKeys: true, server: ups[0].address });
    project = await startProject({ 'gateway.yaml': yaml, 'keys.yaml': readFileSync(path.join(dir, 'keys.yaml'), 'utf8') }, [port], { now });
    const gw = project.gw;
    await withErrorLog(gw, async () => {
      const ok = await request(gw.url('/r40/x'), { 'X-API-Key': sample.key });
      expect(ok.status).toBe(200);
      expect(ok.json.headers['x-gateway-client']).toBe(sample.name);
      const last = await request(gw.url('/r41/x'), { Authorization: `Bearer ${scaleKey(N - 1)}` });
      expect(last.status).toBe(200);
      expect(last.json.headers['x-gateway-client']).toBe(`client-${N - 1}`);
      const bad = await request(gw.url('/r40/x'), { 'X-API-Key': scaleKey(N) });
      expect(bad.status).toBe(401);
    });
  });
});
