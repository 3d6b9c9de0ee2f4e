// TLS profiles through a real nginx, probed with the runtime openssl s_client: protocol
// versions, ALPN h2, HSTS; and the generated directives themselves.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acmeChallengeLocation,
  createSelfSigned,
  formatDirectives,
  hstsHeaderValue,
  INTERMEDIATE_CIPHERS,
  tlsProfileDirectives,
  type TlsProfile,
} from '../../src/tls/index.ts';
import { compile } from '../../src/build/compile.ts';
import { OPENSSL, run, startNginx, tempDir, type Nginx } from './harness.ts';
import { freePort } from '../support/ports.ts';
import { httpsRequest } from '../support/http.ts';

let nginx: Nginx;
let work: string;
let cert: string;
const ports: Record<TlsProfile, number> = { modern: 0, intermediate: 0 };
const HSTS = hstsHeaderValue({ maxAge: 63072000, includeSubdomains: true, preload: true });

beforeAll(async () => {
  work = await tempDir('gw-tls-profiles-');
  const ss = await createSelfSigned({ domains: ['gw.test'], outDir: path.join(work, 'ssl') });
  cert = await fs.readFile(ss.cert, 'utf8');
  ports.modern = await freePort();
  ports.intermediate = await freePort();
  const server = (profile: TlsProfile) => `
  server {
    listen 127.0.0.1:${ports[profile]} ssl;
    http2 on;
    server_name gw.test;
    ssl_certificate ${ss.cert};
    ssl_certificate_key ${ss.key};
${formatDirectives(
  tlsProfileDirectives(profile, {
    sessionCacheZone: `gw_${profile}`,
    trustedCertificate: profile === 'intermediate' ? ss.cert : null,
  }),
  '    ',
)}
    add_header Strict-Transport-Security "${HSTS}" always;
    location / { return 200 "${profile}\\n"; }
  }`;
  nginx = await startNginx(server('modern') + server('intermediate'), [ports.modern, ports.intermediate]);
});

afterAll(async () => {
  await nginx?.stop();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

async function sClient(port: number, args: string[]) {
  const r = await run(OPENSSL, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'gw.test', ...args], 'Q\n');
  const text = r.stdout + r.stderr;
  const m = /New, (TLSv[\d.]+), Cipher is (\S+)/.exec(text);
  const alpn = /ALPN protocol: (\S+)/.exec(text)?.[1] ?? null;
  // a refusal must come from the TLS handshake (an alert), not from a dead listener
  const refused = r.code !== 0 && /alert (protocol version|handshake failure)|no protocols available|no ciphers available/.test(text);
  return { ok: r.code === 0 && m !== null, refused, protocol: m?.[1] ?? null, cipher: m?.[2] ?? null, alpn, text };
}

// The client side must be willing to speak the old versions, so a refusal is the server's.
const LEGACY = ['-cipher', 'DEFAULT@SECLEVEL=0'];

describe.each(['modern', 'intermediate'] as const)('TLS profile %s through nginx', (profile) => {
  it('refuses TLS 1.0 and 1.1', async () => {
    for (const v of ['-tls1', '-tls1_1']) {
      const r = await sClient(ports[profile], [v, ...LEGACY]);
      expect(r.ok, r.text).toBe(false);
      expect(r.refused, r.text).toBe(true);
    }
  });

  it(`${profile === 'modern' ? 'refuses' : 'accepts'} TLS 1.2`, async () => {
    const r = await sClient(ports[profile], ['-tls1_2']);
    if (profile === 'modern') {
      expect(r.ok, r.text).toBe(false);
      expect(r.refused, r.text).toBe(true);
    } else {
      expect(r.ok, r.text).toBe(true);
      expect(r.protocol).toBe('TLSv1.2');
      expect(r.cipher).toMatch(/^ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$/);
    }
  });

  it('refuses a TLS 1.2 CBC suite', async () => {
    const r = await sClient(ports[profile], ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA']);
    expect(r.ok, r.text).toBe(false);
    expect(r.refused, r.text).toBe(true);
  });

  it('accepts TLS 1.3 and negotiates HTTP/2 by ALPN', async () => {
    const r = await sClient(ports[profile], ['-tls1_3', '-alpn', 'h2,http/1.1']);
    expect(r.ok, r.text).toBe(true);
    expect(r.protocol).toBe('TLSv1.3');
    expect(r.alpn).toBe('h2');
  });

  it('sends HSTS', async () => {
    const res = await httpsRequest(ports[profile], 'gw.test', cert);
    expect(res.status).toBe(200);
    expect(res.body).toBe(`${profile}\n`);
    expect(res.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains; preload');
  });
});

describe('tlsProfileDirectives', () => {
  it('modern: TLS 1.3 only, no cipher list, shared cache, no tickets', () => {
    expect(tlsProfileDirectives('modern')).toEqual([
      ['ssl_protocols', 'TLSv1.3'],
      ['ssl_ecdh_curve', 'X25519:prime256v1:secp384r1'],
      ['ssl_prefer_server_ciphers', 'off'],
      ['ssl_session_cache', 'shared:gw_tls:10m'],
      ['ssl_session_timeout', '1d'],
      ['ssl_session_tickets', 'off'],
    ]);
  });

  it('intermediate: TLS 1.2 + 1.3 with the Mozilla AEAD list', () => {
    const d = tlsProfileDirectives('intermediate');
    expect(d[0]).toEqual(['ssl_protocols', 'TLSv1.2', 'TLSv1.3']);
    expect(d[1]).toEqual(['ssl_ciphers', INTERMEDIATE_CIPHERS]);
    expect(INTERMEDIATE_CIPHERS.split(':').every((c) => /GCM|CHACHA20/.test(c))).toBe(true);
    expect(d.map((x) => x[0])).not.toContain('ssl_stapling');
  });

  it('OCSP stapling only with a trusted chain file', () => {
    const d = tlsProfileDirectives('modern', { trustedCertificate: '/etc/ssl/chain.pem' });
    expect(d.slice(-3)).toEqual([
      ['ssl_stapling', 'on'],
      ['ssl_stapling_verify', 'on'],
      ['ssl_trusted_certificate', '/etc/ssl/chain.pem'],
    ]);
  });

  it('rejects unknown profiles and unsafe zone names', () => {
    expect(() => tlsProfileDirectives('old' as TlsProfile)).toThrow(/unknown TLS profile/);
    expect(() => tlsProfileDirectives('modern', { sessionCacheZone: 'a;b' })).toThrow(/zone/);
  });

  it('challenge location serves the webroot with a prefix match that beats regex locations', () => {
    expect(acmeChallengeLocation('/srv/acme')).toEqual({
      modifier: '^~',
      path: '/.well-known/acme-challenge/',
      directives: [
        ['root', '/srv/acme'],
        ['default_type', 'text/plain'],
        ['try_files', '$uri', '=404'],
        ['access_log', 'off'],
      ],
    });
  });
});

describe('generated TLS servers', () => {
  // top-level `server { ... }` blocks of a generated conf file
  function serverBlocks(conf: string): string[] {
    const out: string[] = [];
    const re = /^server \{$/gm;
    for (let m = re.exec(conf); m; m = re.exec(conf)) {
      let depth = 0;
      let i = m.index;
      for (; i < conf.length; i++) {
        if (conf[i] === '{') depth++;
        else if (conf[i] === '}' && --depth === 0) break;
      }
      out.push(conf.slice(m.index, i + 1));
    }
    return out;
  }

  it.each(['modern', 'intermediate'] as const)('every server of a %s listener carries the profile, the catch-all included', async (profile) => {
    const dir = await tempDir('gw-tls-servers-');
    try {
      const ss = await createSelfSigned({ domains: ['gw.test'], outDir: path.join(dir, 'ssl') });
      await fs.writeFile(
        path.join(dir, 'gateway.yaml'),
        `version: 1
listeners:
  - name: secure
    port: 8443
    server_names: [gw.test, www.gw.test]
    tls: { cert: ${JSON.stringify(ss.cert)}, key: ${JSON.stringify(ss.key)}, profile: ${profile} }
routes:
  - name: a
    match: { prefix: / }
    respond: { status: 200, body: a }
  - name: b
    match: { prefix: /b, host: www.gw.test }
    respond: { status: 200, body: b }
`,
      );
      const r = compile(path.join(dir, 'gateway.yaml'));
      expect(r.ok, JSON.stringify(r.diagnostics)).toBe(true);
      const tlsServers = serverBlocks(r.files!['conf.d/40-servers.conf']).filter((b) => /^\s*listen [^;]* ssl\b/m.test(b));
      // one per name group plus the catch-all that refuses unknown names
      expect(tlsServers.length).toBe(3);
      expect(tlsServers.filter((b) => b.includes('ssl_reject_handshake on;'))).toHaveLength(1);
      for (const b of tlsServers) {
        for (const [name, ...args] of tlsProfileDirectives(profile)) expect(b, b).toContain(`    ${name} ${args.join(' ')};`);
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
