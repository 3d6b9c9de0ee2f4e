// Secrets on error paths: build errors never quote secret files (a jwks_file naming the HMAC
// secret or a private key, a plaintext key in the key store), and `check` removes its
// scratch directory (which holds njs/auth.json with the HMAC secrets) on every way out.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonSyntaxText } from '../../src/features/auth/outputs.ts';

const CLI = path.resolve('bin/gatewayctl.js');
const dirs: string[] = [];
const temp = (tag: string) => {
  const d = mkdtempSync(path.join(os.tmpdir(), `gw-secrets-${tag}-`));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const gw = (args: string[], cwd: string, env: Record<string, string> = {}) =>
  spawnSync('node', [CLI, ...args], { cwd, encoding: 'utf8', env: { ...process.env, ...env } });

const SECRET = 'Qz8xVw3JkP0mYt6RbN4sLc1HdG7fUe2aWq5Zy9Xo';
const PRIVATE_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKq7Zb3Yc8Rj1Lm2N
vXwP5sT9uE4dF6gH0iJ3kL7mN8qhRANCAAR5pQ2wE3rT4yU6iO8pA1sD2fG3hJ4k
-----END PRIVATE KEY-----
`;

/** No 4-character piece of `secret` (its first characters included) appears in `text`. */
function leaks(text: string, secret: string): string[] {
  const out: string[] = [];
  const body = secret.replace(/-----(BEGIN|END) PRIVATE KEY-----|\n/g, '');
  for (let i = 0; i + 4 <= body.length; i++) if (text.includes(body.slice(i, i + 4))) out.push(body.slice(i, i + 4));
  return out;
}

function project(files: Record<string, string>): string {
  const dir = temp('proj');
  for (const [rel, text] of Object.entries(files)) writeFileSync(path.join(dir, rel), text);
  return dir;
}

const gatewayWith = (provider: string) => `version: 1
listeners:
  - { name: public, port: 8080 }
upstreams:
  api: { servers: [127.0.0.1:9001] }
auth:
  jwt:
    main: ${provider}
routes:
  - name: api
    match: { prefix: / }
    upstream: api
    auth: { methods: [jwt], jwt_provider: main }
`;

describe('build errors never quote secret files', () => {
  it('jwks_file pointing at the HMAC secret file: positioned error, no part of the secret', () => {
    const dir = project({ 'hmac.secret': `${SECRET}\n`, 'gateway.yaml': gatewayWith('{ algorithms: [RS256], jwks_file: hmac.secret }') });
    for (const cmd of ['build', 'validate', 'check']) {
      const r = gw([cmd], dir);
      expect(r.status, cmd).toBe(1);
      expect(r.stderr).toMatch(/hmac\.secret:1:1 error GW379 JWKS: invalid JSON: not a JSON document \(unexpected character\)/);
      expect(leaks(r.stdout + r.stderr, SECRET), cmd).toEqual([]);
    }
  });

  it('jwks_file pointing at a private key, or at a truncated JSON secret: no part of it', () => {
    const dir = project({
      'key.pem': PRIVATE_KEY,
      'partial.json': `{"k": "${SECRET}`,
      'gateway.yaml': gatewayWith('{ algorithms: [RS256], jwks_file: key.pem }'),
    });
    const r = gw(['build'], dir);
    expect(r.status).toBe(1);
    expect(leaks(r.stdout + r.stderr, PRIVATE_KEY)).toEqual([]);
    writeFileSync(path.join(dir, 'gateway.yaml'), gatewayWith('{ algorithms: [RS256], jwks_file: partial.json }'));
    const p = gw(['build'], dir);
    expect(p.status).toBe(1);
    expect(p.stderr).toMatch(/partial\.json:\d+:\d+ error GW379 JWKS: invalid JSON: unterminated string/);
    expect(leaks(p.stdout + p.stderr, SECRET)).toEqual([]);
  });

  it('a plaintext API key pasted into the key store hash field is not echoed', () => {
    const key = `gw_${SECRET}`;
    const dir = project({
      'keys.yaml': `version: 1\nkeys:\n  - { id: key_0123456789ab, name: ci, hash: ${key}, created: 2026-01-01T00:00:00Z }\n`,
      'gateway.yaml': `version: 1
listeners:
  - { name: public, port: 8080 }
upstreams:
  api: { servers: [127.0.0.1:9001] }
auth:
  api_keys: { file: keys.yaml }
routes:
  - { name: api, match: { prefix: / }, upstream: api, auth: { methods: [api_key] } }
`,
    });
    const r = gw(['build'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/keys\.yaml:3:\d+ error GW379 keys file: hash is not a lowercase sha256 hex digest/);
    expect(leaks(r.stdout + r.stderr, SECRET)).toEqual([]);
  });

  it('every JSON.parse failure is described without quoting the input', () => {
    const inputs = [SECRET, `"${SECRET}`, `{"${SECRET}"}`, `{"a": ${SECRET}}`, `[1, ${SECRET}]`, `{} ${SECRET}`, `{"a": "\\${SECRET}"}`, `-${SECRET}`, `1e${SECRET}`, `{${SECRET}`, '', 'undefined', `{"a":"${SECRET}\u0001"}`];
    for (const text of inputs) {
      let msg = '';
      try {
        JSON.parse(text);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg, text).not.toBe('');
      const described = jsonSyntaxText(msg);
      expect(leaks(described, SECRET), `${text} → ${described}`).toEqual([]);
      expect(described).not.toMatch(/undefined|"/);
    }
  });
});

/** What gatewayctl left in TMPDIR (the tsx loader keeps its own cache there: not ours). */
const leftovers = (tmp: string) => readdirSync(tmp).filter((n) => !n.startsWith('tsx-'));

describe('check removes its scratch directory (HMAC secrets inside) on every way out', () => {
  const hmacProject = () =>
    project({ 'hmac.secret': `${SECRET}\n`, 'gateway.yaml': gatewayWith('{ algorithms: [HS256], secret_file: hmac.secret }') });

  it('when it fails early (no nginx binary)', () => {
    const dir = hmacProject();
    const tmp = temp('tmpdir');
    const r = gw(['check', '--nginx', path.join(dir, 'no-such-nginx')], dir, { TMPDIR: tmp });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no-such-nginx/);
    expect(leftovers(tmp)).toEqual([]);
  });

  it('when openssl fails while substituting a missing certificate', () => {
    const dir = project({
      'hmac.secret': `${SECRET}\n`,
      'gateway.yaml': gatewayWith('{ algorithms: [HS256], secret_file: hmac.secret }').replace(
        '  - { name: public, port: 8080 }',
        '  - { name: public, port: 8443, tls: { cert: missing.crt, key: missing.key } }',
      ),
    });
    const tmp = temp('tmpdir');
    const fake = path.join(temp('bin'), 'openssl');
    mkdirSync(path.dirname(fake), { recursive: true });
    writeFileSync(fake, '#!/bin/sh\nexit 3\n');
    chmodSync(fake, 0o755);
    const r = gw(['check'], dir, { TMPDIR: tmp, GATEWAYCTL_OPENSSL: fake });
    expect(r.status).toBe(1);
    expect(leftovers(tmp)).toEqual([]);
  });

  it('when nginx -t fails, and when it passes', () => {
    const dir = hmacProject();
    const tmp = temp('tmpdir');
    const ok = gw(['check'], dir, { TMPDIR: tmp });
    expect(ok.status, ok.stderr).toBe(0);
    expect(leftovers(tmp)).toEqual([]);
    writeFileSync(path.join(dir, 'gateway.yaml'), gatewayWith('{ algorithms: [HS256], secret_file: hmac.secret }').replace('upstream: api\n    auth', 'upstream: api\n    unsafe_nginx_route: "proxy_bogus_directive on;"\n    auth'));
    const bad = gw(['check'], dir, { TMPDIR: tmp });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/proxy_bogus_directive/);
    expect(leftovers(tmp)).toEqual([]);
  });
});
