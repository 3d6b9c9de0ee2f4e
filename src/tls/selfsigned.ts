// Development certificates: a self-signed leaf for the given names, created with openssl
// (Node's crypto cannot create X.509 certificates). The key is written with mode 0600.
import { promises as fs } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { normalizeDomains } from './acme.ts';
import { openssl } from './openssl.ts';
import { assertSelfSignedPairReplaceable, certInfo, writeFileAtomic, type CertInfo } from './store.ts';

export interface SelfSignedOptions {
  domains: string[]; // DNS names or IP addresses; the first becomes the subject CN
  outDir: string;
  keyType?: 'ec' | 'rsa';
  days?: number;
}

export interface SelfSignedResult {
  cert: string; // absolute path
  key: string; // absolute path
  info: CertInfo;
}

export async function createSelfSigned(opts: SelfSignedOptions): Promise<SelfSignedResult> {
  const ips = opts.domains.filter((d) => isIP(d));
  const dns = opts.domains.filter((d) => !isIP(d));
  const names = [...(dns.length ? normalizeDomainsAllowWildcard(dns) : []), ...ips];
  if (names.length === 0) throw new Error('at least one --domain is required');
  const primary = names[0];
  const days = opts.days ?? 365;
  const outDir = path.resolve(opts.outDir);
  const base = primary.replace(/^\*\./, '_wildcard.');
  const certFile = path.join(outDir, `${base}.crt`);
  const keyFile = path.join(outDir, `${base}.key`);
  const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');

  assertSelfSignedPairReplaceable(certFile, keyFile);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'gatewayctl-selfsigned-'));
  try {
    const tmpKey = path.join(work, 'key.pem');
    const tmpCert = path.join(work, 'cert.pem');
    const keyArgs =
      (opts.keyType ?? 'ec') === 'rsa'
        ? ['-newkey', 'rsa:2048']
        : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    await openssl([
      'req', '-x509', '-nodes', ...keyArgs,
      '-keyout', tmpKey, '-out', tmpCert,
      '-days', String(days),
      '-subj', `/CN=${primary.replace(/[/=+\\]/g, '')}`,
      '-addext', `subjectAltName=${san}`,
      '-addext', 'basicConstraints=critical,CA:FALSE',
      '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment',
      '-addext', 'extendedKeyUsage=serverAuth',
    ]);
    const [certPem, keyPem] = await Promise.all([fs.readFile(tmpCert, 'utf8'), fs.readFile(tmpKey, 'utf8')]);
    await fs.mkdir(outDir, { recursive: true });
    await writeFileAtomic(keyFile, keyPem, 0o600);
    await writeFileAtomic(certFile, certPem, 0o644);
    return { cert: certFile, key: keyFile, info: certInfo(certPem) };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

function normalizeDomainsAllowWildcard(domains: string[]): string[] {
  // Same syntax rules as ACME names, but wildcards are fine for a self-signed certificate.
  const plain = domains.map((d) => d.trim().toLowerCase().replace(/^\*\./, 'wildcard-placeholder.'));
  normalizeDomains(plain);
  const out: string[] = [];
  for (const d of domains.map((x) => x.trim().toLowerCase().replace(/\.$/, ''))) if (!out.includes(d)) out.push(d);
  return out;
}

/** gateway.yaml lines for a TLS listener using the files (paths as given, relative or absolute). */
export function listenerYaml(cert: string, key: string, domains: string[], port = 8443): string {
  const q = (s: string) => JSON.stringify(s);
  const names = domains.filter((d) => !isIP(d));
  return [
    'listeners:',
    '  - name: https',
    `    port: ${port}`,
    ...(names.length ? [`    server_names: [${names.map(q).join(', ')}]`] : []),
    `    tls: { cert: ${q(cert)}, key: ${q(key)} }`,
  ].join('\n');
}
