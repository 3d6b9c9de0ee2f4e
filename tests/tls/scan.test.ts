// The TLS profiles as a client sees them: `gatewayctl build` output served by real nginx,
// scanned with Debian's sslscan (every protocol version, every suite and key exchange group
// its OpenSSL knows), the XML report (`--xml=-`) parsed. Four listeners: modern and
// intermediate, each with and without server_names. With server_names the generated
// catch-all server (ssl_reject_handshake) is the default server of the port, and nginx
// negotiates version, suite and group with its settings before the SNI name picks a server.
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as build } from '../../src/commands/build.ts';
import { createSelfSigned, INTERMEDIATE_CIPHERS, ECDH_CURVES } from '../../src/tls/index.ts';
import { startGateway, type Gateway } from '../support/nginx.ts';
import { run, tempDir } from './harness.ts';
import { freePort } from '../support/ports.ts';

const NAME = 'gw.test';
// Both certificate types: with ECDSA, TLS 1.2 only negotiates the certificate's own curve
// (P-256), so the RSA cases are the ones that show every TLS 1.2 group.
type Case = { profile: 'modern' | 'intermediate'; named: boolean; key: 'ec' | 'rsa' };
const CASES: Case[] = [
  { profile: 'modern', named: true, key: 'ec' },
  { profile: 'modern', named: false, key: 'rsa' },
  { profile: 'intermediate', named: true, key: 'rsa' },
  { profile: 'intermediate', named: false, key: 'ec' },
];
const label = (c: Case) => `${c.profile}-${c.named ? 'named' : 'catchall'}`;

// sslscan's group names → OpenSSL names (as in ssl_ecdh_curve).
const GROUP_NAMES: Record<string, string> = {
  x25519: 'X25519',
  'secp256r1 (NIST P-256)': 'prime256v1',
  'secp384r1 (NIST P-384)': 'secp384r1',
};
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

function sslscanBinary(): string {
  const r = spawnSync('sh', ['-c', 'command -v sslscan'], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.trim()) throw new Error('sslscan is not installed (Debian package sslscan: apt-get install -y sslscan; .ci/run installs it)');
  return r.stdout.trim();
}

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
}

/** The elements of sslscan's XML report, in order, with their attributes. */
function xmlElements(xml: string): XmlElement[] {
  const out: XmlElement[] = [];
  const unescape = (s: string) =>
    s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  for (const m of xml.matchAll(/<([A-Za-z][\w-]*)((?:\s+[\w:-]+\s*=\s*"[^"]*")*)\s*\/?>/g)) {
    const attrs: Record<string, string> = {};
    for (const a of m[2].matchAll(/([\w:-]+)\s*=\s*"([^"]*)"/g)) attrs[a[1]] = unescape(a[2]);
    out.push({ name: m[1], attrs });
  }
  return out;
}

interface Scan {
  protocols: string[]; // enabled, e.g. ['TLSv1.3']
  ciphers: { version: string; cipher: string }[];
  groups: { version: string; name: string }[];
  xml: string;
}

async function scan(port: number, sni: string): Promise<Scan> {
  const r = await run(sslscanBinary(), ['--xml=-', '--no-colour', '--no-heartbleed', `--sni-name=${sni}`, `127.0.0.1:${port}`]);
  const els = xmlElements(r.stdout);
  const test = els.find((e) => e.name === 'ssltest');
  // a report about this very target, or the scan did not happen
  if (r.code !== 0 || !test || test.attrs.port !== String(port) || test.attrs.sniname !== sni)
    throw new Error(`sslscan failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const protocols = els
    .filter((e) => e.name === 'protocol' && e.attrs.type === 'tls' && e.attrs.enabled === '1')
    .map((e) => `TLSv${e.attrs.version}`);
  const ciphers = els.filter((e) => e.name === 'cipher').map((e) => ({ version: e.attrs.sslversion, cipher: e.attrs.cipher }));
  const groups = els.filter((e) => e.name === 'group').map((e) => ({ version: e.attrs.sslversion, name: GROUP_NAMES[e.attrs.name] ?? e.attrs.name }));
  // every protocol element is reported, enabled or not: an empty list means a broken report
  if (els.filter((e) => e.name === 'protocol').length < 4) throw new Error(`sslscan report without protocol results:\n${r.stdout}`);
  return { protocols, ciphers, groups, xml: r.stdout };
}

let work: string;
let gw: Gateway;
const ports = new Map<string, number>();

beforeAll(async () => {
  sslscanBinary();
  work = await tempDir('gw-tls-scan-');
  for (const key of ['ec', 'rsa'] as const) await createSelfSigned({ domains: [NAME], outDir: path.join(work, key), keyType: key });
  for (const c of CASES) ports.set(label(c), await freePort());
  const listeners = CASES.map(
    (c) => `  - name: ${label(c)}
    address: 127.0.0.1
    port: ${ports.get(label(c))}
${c.named ? `    server_names: [${NAME}]\n` : ''}    tls:
      cert: ${c.key}/${NAME}.crt
      key: ${c.key}/${NAME}.key
      profile: ${c.profile}
`,
  ).join('');
  await fs.writeFile(
    path.join(work, 'gateway.yaml'),
    `version: 1
listeners:
${listeners}routes:
  - name: hello
    match: { prefix: / }
    respond: { status: 200, body: "hello" }
`,
  );
  const code = await build({ config: path.join(work, 'gateway.yaml'), out: path.join(work, 'dist') });
  if (code !== 0) throw new Error('gatewayctl build failed');
  gw = await startGateway({ distDir: path.join(work, 'dist'), ports: [...ports.values()] });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

const sorted = (xs: string[]) => [...new Set(xs)].sort();

describe.each(CASES)('sslscan: $profile profile, server_names: $named, $key certificate', (c) => {
  it('offers only the profile’s protocol versions, suites and groups', async () => {
    const s = await scan(ports.get(label(c))!, NAME);
    const where = `${label(c)}\n${s.xml}`;
    const tls13 = s.ciphers.filter((x) => x.version === 'TLSv1.3').map((x) => x.cipher);
    const tls12 = s.ciphers.filter((x) => x.version === 'TLSv1.2').map((x) => x.cipher);
    if (c.profile === 'modern') {
      expect(s.protocols, where).toEqual(['TLSv1.3']);
      expect(tls12, where).toEqual([]);
    } else {
      expect(s.protocols, where).toEqual(['TLSv1.2', 'TLSv1.3']);
      // exactly the ECDHE suites of Mozilla's intermediate list for this certificate type (the
      // DHE ones need ssl_dhparam, which is not set)
      const prefix = c.key === 'ec' ? 'ECDHE-ECDSA-' : 'ECDHE-RSA-';
      const expected = INTERMEDIATE_CIPHERS.split(':').filter((x) => x.startsWith(prefix));
      expect(expected.length).toBe(3);
      expect(sorted(tls12), where).toEqual(sorted(expected));
    }
    expect(sorted(tls13), where).toEqual(sorted(TLS13_SUITES));
    expect(s.ciphers.filter((x) => !['TLSv1.2', 'TLSv1.3'].includes(x.version)), where).toEqual([]);
    // no CBC, no SHA-1 MAC (OpenSSL names CBC suites by their MAC: -SHA, -SHA256, -SHA384 without GCM/POLY1305/CCM)
    for (const x of s.ciphers) {
      expect(x.cipher, where).toMatch(/GCM|POLY1305/);
      expect(x.cipher, where).not.toMatch(/-SHA$|CBC|CCM|ARIA|CAMELLIA/);
    }
    // key exchange groups: exactly the profile's in every enabled version (TLS 1.2 with an
    // ECDSA certificate: only its curve, P-256)
    for (const v of s.protocols) {
      const groups = s.groups.filter((g) => g.version === v).map((g) => g.name);
      const expected = v === 'TLSv1.2' && c.key === 'ec' ? ['prime256v1'] : ECDH_CURVES.split(':');
      expect(sorted(groups), `${v} ${where}`).toEqual(sorted(expected));
    }
  });
});

describe('sslscan: names the listener does not serve', () => {
  it('are refused in the handshake (no protocol completes)', async () => {
    const s = await scan(ports.get('modern-named')!, 'unknown.test');
    expect(s.protocols, s.xml).toEqual([]);
    expect(s.ciphers, s.xml).toEqual([]);
  });
});
