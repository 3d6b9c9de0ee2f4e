// njs/lib/routing.ts helpers under Node (the same code runs in njs; the nginx tests prove that),
// and `gatewayctl route` end to end.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { run, type RouteOptions } from '../../src/commands/route.ts';
import { claimKeyFrom, keyOf, MAX_KEY_LENGTH, openAiError, parseObject } from '../../njs/lib/keys.ts';

describe('njs routing helpers', () => {
  it('parses only top-level JSON objects', () => {
    expect(parseObject('{"model":"m","user":"u"}')).toEqual({ model: 'm', user: 'u' });
    for (const bad of [undefined, null, '', 'model=x', '[1,2]', '"s"', '42', 'null', '{"a":']) expect(parseObject(bad as string)).toBeNull();
  });

  it('turns a member into a key: strings, numbers and booleans; everything else falls back', () => {
    const doc = parseObject('{"s":"alice","n":42,"f":1.5,"b":true,"o":{"x":1},"a":[1],"z":null,"e":""}');
    expect(keyOf(doc, 's')).toBe('alice');
    expect(keyOf(doc, 'n')).toBe('42');
    expect(keyOf(doc, 'f')).toBe('1.5');
    expect(keyOf(doc, 'b')).toBe('true');
    for (const k of ['o', 'a', 'z', 'e', 'missing', 'toString', '__proto__']) expect(keyOf(doc, k)).toBe('');
    expect(keyOf(null, 's')).toBe('');
    expect(keyOf({ u: 'x'.repeat(MAX_KEY_LENGTH + 1) }, 'u')).toBe('');
  });

  it('reads a claim from the base64url payload segment named by "claim:<name>"', () => {
    const seg = Buffer.from(JSON.stringify({ sub: 'alice', tenant: 'acme', n: 7 })).toString('base64url');
    expect(claimKeyFrom('claim:tenant', seg)).toBe('acme');
    expect(claimKeyFrom('claim:n', seg)).toBe('7');
    expect(claimKeyFrom('claim:missing', seg)).toBe('');
    expect(claimKeyFrom('body:tenant', seg)).toBe('');
    expect(claimKeyFrom('claim:tenant', '')).toBe('');
    expect(claimKeyFrom('claim:tenant', 'not*base64')).toBe('');
    expect(claimKeyFrom(undefined, seg)).toBe('');
  });

  it('formats OpenAI-style errors', () => {
    expect(JSON.parse(openAiError('m', 'invalid_request_error', 'missing_model', 'model'))).toEqual({ error: { message: 'm', type: 'invalid_request_error', param: 'model', code: 'missing_model' } });
  });
});

describe('gatewayctl route', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gw-route-'));
  const cfg = path.join(dir, 'gateway.yaml');
  writeFileSync(
    cfg,
    `version: 1
listeners: [{ name: public, port: 8080 }]
upstreams:
  sessions:
    balance: consistent_hash
    hash_key: { header: X-User }
    servers: ["127.0.0.1:9001", "127.0.0.1:9002", { address: "127.0.0.1:9003", weight: 2 }]
  other:
    servers: ["127.0.0.1:9010"]
routes:
  - { match: { prefix: / }, upstream: sessions }
  - { match: { prefix: /o/ }, upstream: other }
`,
  );
  // in-process (the CLI wiring itself is spawned once below)
  const cli = async (...args: string[]) => {
    const o: RouteOptions = { config: cfg, key: '' };
    for (let i = 0; i < args.length; i++) {
      if (args[i] === '--key') o.key = args[++i];
      else if (args[i] === '--upstream') o.upstream = args[++i];
      else if (args[i] === '--unavailable') o.unavailable = [args[++i]];
      else if (args[i] === '--json') o.json = true;
    }
    let out = '';
    const w = (c: string | Uint8Array) => ((out += String(c)), true);
    const so = vi.spyOn(process.stdout, 'write').mockImplementation(w);
    const se = vi.spyOn(process.stderr, 'write').mockImplementation(w);
    try {
      return { code: await run(o), out };
    } finally {
      so.mockRestore();
      se.mockRestore();
    }
  };

  const cliWith = async (config: string, o: Omit<RouteOptions, 'config'>) => {
    let out = '';
    const w = (c: string | Uint8Array) => ((out += String(c)), true);
    const so = vi.spyOn(process.stdout, 'write').mockImplementation(w);
    const se = vi.spyOn(process.stderr, 'write').mockImplementation(w);
    try {
      return { code: await run({ config, ...o }), out };
    } finally {
      so.mockRestore();
      se.mockRestore();
    }
  };

  it('is wired into the CLI', () => {
    const out = execFileSync('node', ['bin/gatewayctl.js', 'route', '-c', cfg, '--key', 'alice'], { encoding: 'utf8' });
    expect(out).toMatch(/key "alice" → 127\.0\.0\.1:900[123]/);
  });

  it('prints the peer, its successors and why; --json has the same answer', async () => {
    const text = await cli('--key', 'alice');
    expect(text.code).toBe(0);
    expect(text.out).toContain('upstream sessions: key from header X-User');
    expect(text.out).toMatch(/key "alice" → 127\.0\.0\.1:900[123]/);
    expect(text.out).toContain('crc32');
    const j = JSON.parse((await cli('--key', 'alice', '--json')).out);
    expect(text.out).toContain(`→ ${j.peer}`);
    expect(j.successors).toHaveLength(2);
    expect(new Set([j.peer, ...j.successors]).size).toBe(3);
    expect(j.ringPoints).toBe(640);
    const failed = JSON.parse((await cli('--key', 'alice', '--json', '--unavailable', j.peer)).out);
    expect(failed.peer).toBe(j.successors[0]);
  });

  it('takes the model and the body-field key from --body as the gateway does', async () => {
    const models = path.join(dir, 'models.yaml');
    writeFileSync(
      models,
      `version: 1
listeners: [{ name: public, port: 8080 }]
upstreams:
  pool: { balance: consistent_hash, hash_key: { body_field: user }, servers: ["10.0.0.1:80", "10.0.0.2:80"] }
  other: { servers: ["10.0.1.1:80"] }
models: [{ id: gpt-4o, upstream: pool }, { id: llama, upstream: other }]
routes:
  - { match: { exact: /v1/chat/completions, methods: [POST] }, models: route }
`,
    );
    const viaBody = await cliWith(models, { body: '{"model":"GPT-4o","user":"u-1","messages":[]}', json: true });
    const direct = await cliWith(models, { key: 'u-1', upstream: 'pool', json: true });
    expect(viaBody.code).toBe(0);
    expect(JSON.parse(viaBody.out).peer).toBe(JSON.parse(direct.out).peer);
    expect(JSON.parse(viaBody.out).notes).toEqual(['model GPT-4o → upstream pool', 'key from body field user']);
    expect((await cliWith(models, { model: 'llama', key: 'x' })).out).toContain('balances with round_robin');
    const unknown = await cliWith(models, { body: '{"model":"nope"}' });
    expect(unknown.code).toBe(1);
    expect(unknown.out).toContain('404 model_not_found');
    expect((await cliWith(models, { body: '{"model":"gpt-4o"}' })).out).toContain('hash_fallback');
  });

  it('refuses upstreams without consistent hashing and unknown names', async () => {
    const other = await cli('--key', 'a', '--upstream', 'other');
    expect(other.code).toBe(1);
    expect(other.out).toContain('not consistent_hash');
    expect((await cli('--key', 'a', '--upstream', 'nope')).out).toContain('unknown upstream "nope"');
  });
});
