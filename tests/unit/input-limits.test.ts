// Bounded input (config, included files, single values, the API key store) and YAML/JSON
// syntax errors reported where the parser failed, once per real problem.
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { LIMITS, loadConfig } from '../../src/config/load.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { KEYS_FILE_MAX_BYTES, KeyStoreError, loadKeys, parseKeys } from '../../src/keys/store.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gatewayctl-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BASE = `version: 1
listeners:
  - name: web
    port: 8080
routes:
  - match: { prefix: / }
    respond: { status: 200 }
`;

const lines = (text: string, env: Record<string, string> = {}) =>
  compile('gateway.yaml', { text, env }).diagnostics.map(formatDiagnostic);

describe('YAML syntax errors', () => {
  it('an unclosed [ is reported once, where it was opened', () => {
    const text = 'version: 1\nlisteners:\n  - { name: web, port: 8080, server_names: [a.example\nroutes: []\n';
    const out = lines(text);
    expect(out.filter((l) => l.includes(' [ '))).toEqual([
      expect.stringMatching(/^gateway\.yaml:3:44 error GW101 YAML syntax: \[ is never closed with \]/),
    ]);
    expect(out.every((l) => !l.startsWith('gateway.yaml:1:1 '))).toBe(true);
  });

  it('an unclosed flow sequence in block context', () => {
    const out = lines('version: 1\nlisteners: [ { name: web, port: 8080 }\nroutes:\n  - match: { prefix: / }\n');
    expect(out).toEqual([expect.stringMatching(/^gateway\.yaml:2:12 error GW101 YAML syntax: \[ is never closed with \]/)]);
  });

  it('a JSON typo (missing comma) is reported once at the token that follows it', () => {
    const out = lines('{"version": 1, "listeners": [{"name": "web" "port": 8080}], "routes": []}\n');
    expect(out).toEqual(['gateway.yaml:1:45 error GW101 YAML syntax: Unexpected double-quoted-scalar token']);
  });

  it('a trailing comma in JSON', () => {
    const out = lines('{\n  "version": 1,\n  "listeners": [{"name": "web", "port": 8080}]\n  "routes": []\n}\n');
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^gateway\.yaml:4:3 error GW101 /);
  });
});

describe('input size limits', () => {
  it('refuses a config file over the per-file limit before reading it (GW107 at 1:1)', () => {
    const f = path.join(dir, 'huge.yaml');
    writeFileSync(f, BASE);
    truncateSync(f, 20 * 1024 * 1024); // sparse: 20 MiB on paper, nothing on disk
    const r = compile(f);
    expect(r.ok).toBe(false);
    expect(r.diagnostics).toHaveLength(1);
    expect(r.diagnostics[0]).toMatchObject({ code: 'GW107', at: { line: 1, col: 1 } });
    expect(r.diagnostics[0].message).toContain('20 MiB');
    expect(r.diagnostics[0].message).toContain('at most 1 MiB');
  });

  it('refuses text passed in memory over the limit too', () => {
    const r = compile('gateway.yaml', { text: BASE + `# ${'x'.repeat(LIMITS.fileBytes)}\n` });
    expect(r.diagnostics.map((x) => x.code)).toEqual(['GW107']);
  });

  it('an included file over the limit is refused at its include entry', () => {
    const sub = path.join(dir, 'inc-big');
    rmSync(sub, { recursive: true, force: true });
    mkdirSync(sub);
    writeFileSync(path.join(sub, 'gateway.yaml'), `${BASE}include:\n  - routes.yaml\n`);
    writeFileSync(path.join(sub, 'routes.yaml'), 'routes: []\n');
    truncateSync(path.join(sub, 'routes.yaml'), LIMITS.fileBytes + 1);
    const out = compile(path.join(sub, 'gateway.yaml')).diagnostics;
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ code: 'GW107', at: { line: 9, col: 5 } });
  });

  it('the files together may not exceed the total limit', () => {
    const sub = path.join(dir, 'inc-total');
    mkdirSync(sub, { recursive: true });
    const filler = `# ${'x'.repeat(LIMITS.fileBytes - 20)}\n`;
    writeFileSync(path.join(sub, 'gateway.yaml'), `${BASE}include:\n  - a.yaml\n  - b.yaml\n`);
    writeFileSync(path.join(sub, 'a.yaml'), `routes: []\n${filler}`);
    writeFileSync(path.join(sub, 'b.yaml'), `routes: []\n${filler}`);
    const out = compile(path.join(sub, 'gateway.yaml')).diagnostics;
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ code: 'GW107', at: { line: 10, col: 5, path: 'include[1]' } });
    expect(out[0].message).toContain('at most 2 MiB for a config and all its included files');
  });

  it('a single value over 64 KiB is refused at its position (GW108), also after ${VAR} interpolation', () => {
    const text = BASE.replace('respond: { status: 200 }', `respond: { status: 200, body: "${'a'.repeat(LIMITS.scalarBytes + 1)}" }`);
    expect(lines(text)).toEqual([expect.stringMatching(/^gateway\.yaml:7:35 error GW108 routes\[0\]\.respond\.body: value is 65537 bytes long; a value is at most 65536 bytes \(64 KiB\)$/)]);
    const viaEnv = BASE.replace('respond: { status: 200 }', 'respond: { status: 200, body: "${BODY}${BODY}" }');
    expect(lines(viaEnv, { BODY: 'b'.repeat(40 * 1024) })).toEqual([
      expect.stringMatching(/^gateway\.yaml:7:35 error GW108 routes\[0\]\.respond\.body: value is 81920 bytes long/),
    ]);
  });

  it('the limits count UTF-8 bytes, not characters (values and keys at the boundary)', () => {
    // 21,845 three-byte characters are 65,535 bytes; one more is 65,538
    const euros = (n: number) => BASE.replace('respond: { status: 200 }', `respond: { status: 200, body: "${'€'.repeat(n)}" }`);
    const gw108 = (out: string[]) => out.filter((l) => l.includes('GW108'));
    expect(gw108(lines(euros(21_845)))).toEqual([]); // (the schema's own 4,096-character bound still applies)
    expect(lines(euros(21_846))).toEqual([expect.stringMatching(/^gateway\.yaml:7:35 error GW108 routes\[0\]\.respond\.body: value is 65538 bytes long/)]);
    // the same after ${VAR} interpolation of a short plain scalar
    const viaEnv = BASE.replace('respond: { status: 200 }', 'respond:\n      status: 200\n      body: ${BODY}');
    expect(gw108(lines(viaEnv, { BODY: '€'.repeat(21_845) }))).toEqual([]);
    expect(lines(viaEnv, { BODY: '€'.repeat(21_846) })).toEqual([expect.stringMatching(/^gateway\.yaml:9:13 error GW108 routes\[0\]\.respond\.body: value is 65538 bytes long/)]);
    // keys: 128 two-byte characters are 256 bytes (allowed, then unknown to the schema); 129 are 258
    const key = (n: number) => BASE.replace('respond: { status: 200 }', `respond: { status: 200 }\n    ${'é'.repeat(n)}: 1`);
    expect(gw108(lines(key(128)))).toEqual([]);
    expect(gw108(lines(key(129)))).toEqual([
      expect.stringMatching(/^gateway\.yaml:8:5 error GW108 routes\[0\]: key is 258 bytes long; keys are at most 256 bytes$/),
    ]);
  });
});

describe('API key store size limit', () => {
  it('loadKeys refuses a keys file over the limit, positioned, without reading it', async () => {
    const f = path.join(dir, 'keys.yaml');
    writeFileSync(f, 'version: 1\nkeys: []\n');
    truncateSync(f, KEYS_FILE_MAX_BYTES + 1);
    await expect(loadKeys(f)).rejects.toThrow(KeyStoreError);
    await expect(loadKeys(f)).rejects.toThrow(/keys\.yaml:1:1: keys file is 64 MiB; gatewayctl reads at most 64 MiB/);
    expect(() => parseKeys('#'.repeat(KEYS_FILE_MAX_BYTES + 1), 'k.yaml')).toThrow(KeyStoreError);
  });

  it('build refuses it at auth.api_keys.file (GW110)', () => {
    const sub = path.join(dir, 'auth');
    mkdirSync(sub, { recursive: true });
    writeFileSync(path.join(sub, 'keys.yaml'), 'version: 1\nkeys: []\n');
    truncateSync(path.join(sub, 'keys.yaml'), KEYS_FILE_MAX_BYTES + 10);
    writeFileSync(
      path.join(sub, 'gateway.yaml'),
      `version: 1\nlisteners:\n  - name: web\n    port: 8080\nauth:\n  api_keys:\n    file: keys.yaml\nroutes:\n  - match: { prefix: / }\n    auth: api_key\n    respond: { status: 200 }\n`,
    );
    const r = compile(path.join(sub, 'gateway.yaml'));
    expect(r.ok).toBe(false);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(/gateway\.yaml:7:11 error GW110 auth\.api_keys\.file: keys file is 64 MiB; gatewayctl reads at most 64 MiB$/),
    ]);
  });
});

describe('JWKS and secret file size limits', () => {
  it('refuses an oversized JWKS file before reading it, naming only its size (GW379)', () => {
    const sub = path.join(dir, 'jwks');
    mkdirSync(sub, { recursive: true });
    writeFileSync(path.join(sub, 'jwks.json'), '{"keys":[]}');
    truncateSync(path.join(sub, 'jwks.json'), 5 * 1024 * 1024);
    writeFileSync(
      path.join(sub, 'gateway.yaml'),
      `version: 1\nlisteners:\n  - name: web\n    port: 8080\nauth:\n  jwt:\n    idp:\n      algorithms: [RS256]\n      jwks_file: jwks.json\nroutes:\n  - match: { prefix: / }\n    auth: jwt\n    respond: { status: 200 }\n`,
    );
    const out = compile(path.join(sub, 'gateway.yaml')).diagnostics.map(formatDiagnostic);
    expect(out).toContainEqual(expect.stringMatching(/gateway\.yaml:9:18 error GW379 auth\.jwt\.idp\.jwks_file: cannot read JWKS \S*jwks\.json: JWKS is 5 MiB; gatewayctl reads at most 1 MiB$/));
  });
});

describe('${VAR} interpolation while loading', () => {
  it('types an unquoted ${VAR} as YAML would, keeps quoted ones strings, $${ a literal, other scalars as parsed', () => {
    const text = [
      'a: ${N}',
      'b: "${N}"',
      'c: ${T}',
      'd: $${N}',
      'e: x-${N:-7}',
      'f: 12',
      "g: '12'",
      'h: plain',
      'i: $',
    ].join('\n');
    const r = loadConfig('gateway.yaml', { text, env: { N: '8080', T: 'true' } });
    expect(r.diagnostics).toEqual([]);
    expect(r.value).toEqual({ a: 8080, b: '8080', c: true, d: '${N}', e: 'x-8080', f: 12, g: '12', h: 'plain', i: '$' });
    expect(r.positions.value.get('h')).toEqual({ file: 'gateway.yaml', line: 8, col: 4, path: 'h' });
    expect(r.positions.key.get('h')).toEqual({ file: 'gateway.yaml', line: 8, col: 1, path: 'h' });
  });
});
