// On-disk layout of managed (ACME) certificates and helpers to inspect PEM files.
//
//   <certsDir>/<primary domain>/fullchain.pem   leaf + intermediates (what nginx serves)
//   <certsDir>/<primary domain>/privkey.pem     mode 0600
//   <certsDir>/<primary domain>/meta.json       CertMeta: how it was issued, so renew can repeat it
//   <certsDir>/account/<directory host>.key     ACME account key, mode 0600, reused
//
// Files are replaced atomically: new contents go to temporary files in the same directory
// and are renamed over the old ones only after the whole issuance succeeded.
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { promises as fs, lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { assertReplaceable, UnsafeReplaceError, type Recogniser } from '../build/guard.ts';

export const DEFAULT_CERTS_DIR = 'ssl/managed';
export const DEFAULT_WEBROOT = '.gatewayctl/acme'; // = global.acme_webroot in gateway.yaml
export const ACCOUNT_DIR = 'account';

export interface CertMeta {
  domains: string[]; // primary first
  issuer: string; // issuer distinguished name of the leaf
  notAfter: string; // ISO 8601
  notBefore: string; // ISO 8601
  serial: string; // hex, upper case
  directory: string; // ACME directory URL
  email: string | null;
  keyType: 'ec' | 'rsa';
  webroot: string; // absolute path the challenge files were written under
  issuedAt: string; // ISO 8601
}

export interface CertInfo {
  subject: string;
  issuer: string;
  names: string[]; // DNS and IP subject alternative names
  notBefore: Date;
  notAfter: Date;
  serial: string;
  fingerprint256: string;
}

export function certsDirFrom(dir: string | undefined): string {
  return path.resolve(dir ?? process.env.GATEWAYCTL_CERTS_DIR ?? DEFAULT_CERTS_DIR);
}

export function webrootFrom(dir: string | undefined): string {
  return path.resolve(dir ?? process.env.GATEWAYCTL_ACME_WEBROOT ?? DEFAULT_WEBROOT);
}

export function certPaths(certsDir: string, primary: string) {
  const dir = path.join(certsDir, primary);
  return {
    dir,
    fullchain: path.join(dir, 'fullchain.pem'),
    privkey: path.join(dir, 'privkey.pem'),
    meta: path.join(dir, 'meta.json'),
  };
}

/** Account key file for an ACME directory: one per directory host (and port). */
export function accountKeyPath(certsDir: string, directoryUrl: string): string {
  const u = new URL(directoryUrl);
  const host = u.port ? `${u.hostname}_${u.port}` : u.hostname;
  return path.join(certsDir, ACCOUNT_DIR, `${host}.key`);
}

/** Parses the first certificate of a PEM bundle. */
export function certInfo(pem: string | Buffer): CertInfo {
  const x = new X509Certificate(pem);
  const names: string[] = [];
  for (const part of (x.subjectAltName ?? '').split(/,\s*/)) {
    const m = /^(DNS|IP Address):(.+)$/.exec(part.trim());
    if (m) names.push(m[2]);
  }
  return {
    subject: x.subject.replace(/\n/g, ', '),
    issuer: x.issuer.replace(/\n/g, ', '),
    names,
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    serial: x.serialNumber.toUpperCase(),
    fingerprint256: x.fingerprint256,
  };
}

/** True when the private key belongs to the (first) certificate of the PEM bundle. */
export function keyMatchesCert(certPem: string | Buffer, keyPem: string | Buffer): boolean {
  try {
    const x = new X509Certificate(certPem);
    const pub = createPublicKey(createPrivateKey(keyPem));
    const a = x.publicKey.export({ type: 'spki', format: 'der' });
    const b = pub.export({ type: 'spki', format: 'der' });
    return a.equals(b);
  } catch {
    return false;
  }
}

export function daysLeft(notAfter: Date, now = new Date()): number {
  return Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000);
}

async function writeTemp(dir: string, name: string, data: string | Buffer, mode: number): Promise<string> {
  const tmp = path.join(dir, `.${name}.tmp-${randomBytes(6).toString('hex')}`);
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode); // umask must not widen or narrow the intended mode
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Writes one file atomically (temp file in the same directory, fsync, rename). */
export async function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = await writeTemp(path.dirname(file), path.basename(file), data, mode);
  try {
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Stores a freshly issued certificate. All three files are first written completely as
 * temporaries; only then are they renamed into place (key first, metadata last), so an
 * error before this point leaves the previous certificate untouched.
 */
export async function storeCertificate(
  certsDir: string,
  meta: CertMeta,
  fullchain: string,
  privkey: string,
): Promise<ReturnType<typeof certPaths>> {
  const p = certPaths(certsDir, meta.domains[0]);
  assertReplaceable(p.dir, 'certificate directory', managedCertDir);
  await fs.mkdir(p.dir, { recursive: true, mode: 0o755 });
  const temps: [string, string][] = [];
  try {
    temps.push([await writeTemp(p.dir, 'privkey.pem', privkey, 0o600), p.privkey]);
    temps.push([await writeTemp(p.dir, 'fullchain.pem', fullchain, 0o644), p.fullchain]);
    temps.push([await writeTemp(p.dir, 'meta.json', JSON.stringify(meta, null, 2) + '\n', 0o644), p.meta]);
  } catch (e) {
    await Promise.all(temps.map(([t]) => fs.rm(t, { force: true })));
    throw e;
  }
  for (const [tmp, final] of temps) await fs.rename(tmp, final);
  return p;
}

const MANAGED_FILES = new Set(['fullchain.pem', 'privkey.pem', 'meta.json']);

/** Whether a PEM certificate is self-signed (issued by its own key): a development pair or placeholder. */
export function isSelfSigned(pem: string | Buffer): boolean {
  try {
    const x = new X509Certificate(pem);
    // subject = issuer and signed by its own key (checkIssued would also demand keyCertSign)
    return x.subject === x.issuer && x.verify(x.publicKey);
  } catch {
    return false;
  }
}

/**
 * A certificate directory `tls issue` may write into: one it wrote before (meta.json), or a
 * self-signed placeholder pair (fullchain.pem + privkey.pem) that lets nginx start before
 * the first issuance. A CA-issued certificate without meta.json, or any other file, is
 * someone else's and is never overwritten.
 */
export const managedCertDir: Recogniser = (dir) => {
  const names = readdirSync(dir);
  const foreign = names.filter((n) => !MANAGED_FILES.has(n) && !/^\..+\.tmp-[0-9a-f]+$/.test(n) && n !== '.lock');
  if (foreign.length) return `it holds files gatewayctl does not manage: ${foreign.join(', ')}`;
  if (names.includes('meta.json')) {
    try {
      const m = JSON.parse(readFileSync(path.join(dir, 'meta.json'), 'utf8')) as Partial<CertMeta>;
      if (Array.isArray(m.domains) && typeof m.directory === 'string') return null;
    } catch {
      /* below */
    }
    return 'its meta.json was not written by gatewayctl tls issue';
  }
  if (!names.includes('fullchain.pem')) return 'it holds a private key without the certificate gatewayctl would replace';
  if (!lstatSync(path.join(dir, 'fullchain.pem')).isFile() || !isSelfSigned(readFileSync(path.join(dir, 'fullchain.pem')))) {
    return 'it holds a certificate gatewayctl did not issue (no meta.json, and fullchain.pem is not a self-signed placeholder)';
  }
  return null;
};

/**
 * Refuses (UnsafeReplaceError GW611) to overwrite an existing certificate or key file unless
 * the pair is a self-signed development pair: the certificate is self-signed and the key
 * belongs to it. Absent files are fine.
 */
export function assertSelfSignedPairReplaceable(certFile: string, keyFile: string): void {
  const cert = lstatSync(certFile, { throwIfNoEntry: false });
  const key = lstatSync(keyFile, { throwIfNoEntry: false });
  if (!cert && !key) return;
  const refuse = (file: string, reason: string) => new UnsafeReplaceError('GW611', file, 'file', `${reason} (only a previous self-signed pair is replaced; choose another --out)`);
  if (cert && !cert.isFile()) throw refuse(certFile, 'it is not a regular file');
  if (key && !key.isFile()) throw refuse(keyFile, 'it is not a regular file');
  if (!cert) throw refuse(keyFile, 'a private key exists without its certificate');
  const certPem = readFileSync(certFile);
  if (!isSelfSigned(certPem)) throw refuse(certFile, 'it is not a self-signed certificate');
  if (key && !keyMatchesCert(certPem, readFileSync(keyFile))) throw refuse(keyFile, 'it is not the key of the self-signed certificate beside it');
}

export interface ManagedCert {
  primary: string;
  paths: ReturnType<typeof certPaths>;
  meta: CertMeta | null; // null when meta.json is missing or unreadable
  info: CertInfo | null; // null when fullchain.pem is missing or unreadable
  keyMatch: boolean;
  error: string | null;
}

/** Every certificate directory under certsDir (those holding a meta.json or fullchain.pem). */
export async function listManaged(certsDir: string): Promise<ManagedCert[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(certsDir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: ManagedCert[] = [];
  for (const ent of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!ent.isDirectory() || ent.name === ACCOUNT_DIR || ent.name.startsWith('.')) continue;
    const paths = certPaths(certsDir, ent.name);
    const [metaText, chain, key] = await Promise.all(
      [paths.meta, paths.fullchain, paths.privkey].map((f) => fs.readFile(f, 'utf8').catch(() => null)),
    );
    if (metaText === null && chain === null) continue;
    let meta: CertMeta | null = null;
    let info: CertInfo | null = null;
    const errors: string[] = [];
    if (metaText !== null) {
      try {
        meta = JSON.parse(metaText) as CertMeta;
      } catch {
        errors.push('meta.json is not valid JSON');
      }
    } else errors.push('meta.json missing');
    if (chain !== null) {
      try {
        info = certInfo(chain);
      } catch {
        errors.push('fullchain.pem is not a certificate');
      }
    } else errors.push('fullchain.pem missing');
    if (key === null) errors.push('privkey.pem missing');
    const keyMatch = chain !== null && key !== null && keyMatchesCert(chain, key);
    out.push({ primary: ent.name, paths, meta, info, keyMatch, error: errors.length ? errors.join('; ') : null });
  }
  return out;
}

/**
 * Runs fn while holding <certsDir>/.lock (O_EXCL file with the holder's pid), so a timer
 * renewal and a manual issue never interleave. A lock left by a dead process is taken over.
 */
export async function withCertsLock<T>(certsDir: string, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(certsDir, { recursive: true });
  const lock = path.join(certsDir, '.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await fs.open(lock, 'wx', 0o644);
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const pid = Number((await fs.readFile(lock, 'utf8').catch(() => '')).trim());
      let alive = false;
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (k) {
          alive = (k as NodeJS.ErrnoException).code === 'EPERM';
        }
      }
      if (alive) throw new Error(`another gatewayctl tls run (pid ${pid}) is working on ${certsDir}; ${lock} is its lock`);
      await fs.rm(lock, { force: true });
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lock, { force: true });
  }
}
