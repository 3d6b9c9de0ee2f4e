// Certificate issuance and renewal through ACME (acme-client) with the HTTP-01 challenge.
//
// The challenge answer is written to <webroot>/.well-known/acme-challenge/<token>; the
// generated nginx config serves that location from the webroot on every plain-HTTP
// listener (see acmeChallengeLocation() in ./profiles.ts), so the gateway itself answers
// the CA's validation request. Nothing is written into the certificate directory until
// the CA has issued the certificate.
import type * as AcmeClient from 'acme-client';
import { promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import { assertReplaceable } from '../build/guard.ts';
import https from 'node:https';
import path from 'node:path';
import {
  accountKeyPath,
  certInfo,
  certPaths,
  daysLeft,
  listManaged,
  managedCertDir,
  storeCertificate,
  withCertsLock,
  writeFileAtomic,
  type CertMeta,
} from './store.ts';

export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

// acme-client's directory.letsencrypt values, spelled out so that importing this module
// (normalizeDomains, the constants) does not load acme-client: it loads when a certificate
// is issued (a test compares these with acme-client's own).
export const LETSENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETSENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

let acme: typeof AcmeClient;

export interface IssueOptions {
  domains: string[]; // first one names the certificate directory
  email: string | null;
  directory: string; // ACME directory URL
  keyType: 'ec' | 'rsa';
  webroot: string; // absolute
  certsDir: string; // absolute
  log?: (line: string) => void;
}

export interface IssueHooks {
  /**
   * Called once after new certificate files are in place: make the serving gateway load
   * them (reload). Throwing makes issue/renew fail (exit 1) with the certificates stored;
   * resolving to false means it deliberately did not reload (the files stay marked as not
   * loaded, see RELOAD_PENDING_FILE).
   */
  afterIssue?: () => Promise<void | boolean>;
}

/**
 * `<certs-dir>/.reload-pending` exists while stored certificates have not been loaded by
 * the gateway (the reload after an issue or renewal failed). The next `renew` reloads even
 * when nothing is due, so a failed reload is retried by the timer instead of leaving the
 * new certificate unused until the served one expires.
 */
export const RELOAD_PENDING_FILE = '.reload-pending';

async function runAfterIssue(certsDir: string, hooks: IssueHooks, what: string): Promise<void> {
  if (!hooks.afterIssue) return;
  const marker = path.join(certsDir, RELOAD_PENDING_FILE);
  await writeFileAtomic(marker, `${new Date().toISOString()} ${what}\n`, 0o644);
  let reloaded: void | boolean;
  try {
    reloaded = await hooks.afterIssue();
  } catch (e) {
    throw new AcmeError(`${what}, but the gateway was not reloaded and still serves the old certificate: ${(e as Error).message}`, 'reload');
  }
  if (reloaded !== false) await fs.rm(marker, { force: true });
}

/** True when a previous issue/renew stored certificates the gateway has not loaded yet. */
export async function reloadPending(certsDir: string): Promise<boolean> {
  return fs.access(path.join(certsDir, RELOAD_PENDING_FILE)).then(
    () => true,
    () => false,
  );
}

export interface IssueResult {
  primary: string;
  fullchain: string;
  privkey: string;
  meta: CertMeta;
}

/** An ACME failure with the CA's own explanation (problem document detail) as message. */
export class AcmeError extends Error {
  constructor(
    message: string,
    readonly stage: string,
  ) {
    super(message);
    this.name = 'AcmeError';
  }
}

const DOMAIN_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** Lower-cases, de-duplicates and syntax-checks domain names; primary stays first. */
export function normalizeDomains(domains: string[]): string[] {
  const out: string[] = [];
  for (const raw of domains) {
    const d = raw.trim().toLowerCase().replace(/\.$/, '');
    if (!d || d.length > 253 || !DOMAIN_RE.test(d)) throw new Error(`invalid domain name: ${JSON.stringify(raw)}`);
    if (!out.includes(d)) out.push(d);
  }
  if (out.length === 0) throw new Error('at least one --domain is required');
  if (out[0].startsWith('*.')) throw new Error('the first --domain names the certificate and cannot be a wildcard');
  if (out.some((d) => d.startsWith('*.')))
    throw new Error('wildcard names need the DNS-01 challenge; HTTP-01 (webroot) cannot validate them');
  return out;
}

/**
 * Trust for the ACME server's HTTPS endpoint. Public CAs need nothing; a private test CA
 * (e.g. pebble) is trusted through GATEWAYCTL_ACME_CA (a PEM file), applied to
 * acme-client's own axios instance. NODE_EXTRA_CA_CERTS works as well for a child process.
 */
function configureHttpClient(): https.Agent | undefined {
  const caFile = process.env.GATEWAYCTL_ACME_CA;
  const ax = acme.axios as unknown as { defaults: { httpsAgent?: https.Agent } };
  if (caFile) {
    const ca = readFileSync(caFile, 'utf8');
    ax.defaults.httpsAgent = new https.Agent({ ca, keepAlive: false });
  }
  return ax.defaults.httpsAgent;
}

/**
 * One plain GET of the directory before anything else: acme-client retries network errors
 * with a growing delay (about 75 s in total), which is right for a flaky CA but a poor
 * answer to a wrong URL, an unreachable host or an untrusted certificate.
 */
function checkDirectory(url: string, agent: https.Agent | undefined, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'http:' ? http : https;
    const req = mod.get(u, u.protocol === 'https:' && agent ? { agent } : {}, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new AcmeError(`ACME directory ${url} answered HTTP ${res.statusCode}`, 'directory'));
        try {
          const dir = JSON.parse(body) as { newOrder?: unknown };
          if (typeof dir.newOrder !== 'string') throw new Error('no newOrder');
        } catch {
          return reject(new AcmeError(`${url} is not an ACME directory`, 'directory'));
        }
        resolve();
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(new AcmeError(`cannot reach ACME directory ${url}: ${e.code ? `${e.code} ` : ''}${e.message}`, 'directory')),
    );
  });
}

async function loadOrCreateAccountKey(certsDir: string, directory: string, log: (s: string) => void): Promise<Buffer> {
  const file = accountKeyPath(certsDir, directory);
  try {
    return await fs.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const key = await acme.crypto.createPrivateEcdsaKey('P-256');
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, key, 0o600);
  log(`created ACME account key ${file}`);
  return key;
}

/** mkdir -p where every created directory is world-traversable (nginx workers read it). */
async function mkdirReadable(dir: string): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true });
  if (!first) return;
  for (let d = dir; ; d = path.dirname(d)) {
    await fs.chmod(d, 0o755);
    if (d === first || d === path.dirname(d)) break;
  }
}

function challengeFile(webroot: string, token: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new AcmeError(`ACME server sent an unsafe token: ${JSON.stringify(token)}`, 'challenge');
  return path.join(webroot, ACME_CHALLENGE_PREFIX, token);
}

function describeError(e: unknown): string {
  const err = e as Error & { code?: string; response?: { data?: { detail?: string } } };
  if (err?.response?.data?.detail) return err.response.data.detail;
  if (err?.code) return `${err.code} ${err.message}`;
  // acme-client's retry interceptor ends in this TypeError when every retry hit a network error
  if (/reading 'config'/.test(err?.message ?? '')) return 'network error talking to the ACME server (retries exhausted)';
  return err?.message ?? String(e);
}

/**
 * Obtains a certificate for opts.domains and stores it under certsDir/<primary>/.
 * On any failure throws AcmeError carrying the CA's reason; existing files stay untouched.
 */
export async function issue(opts: IssueOptions, hooks: IssueHooks = {}): Promise<IssueResult> {
  const r = await withCertsLock(opts.certsDir, () => issueLocked(opts));
  await runAfterIssue(opts.certsDir, hooks, `certificate for ${r.primary} stored (serial ${r.meta.serial})`);
  return r;
}

async function issueLocked(opts: IssueOptions): Promise<IssueResult> {
  const log = opts.log ?? (() => {});
  const domains = normalizeDomains(opts.domains);
  // before any order: a directory holding someone else's certificate is never overwritten
  assertReplaceable(certPaths(opts.certsDir, domains[0]).dir, 'certificate directory', managedCertDir);
  acme ??= await import('acme-client');
  await checkDirectory(opts.directory, configureHttpClient());

  let stage = 'account';
  const written: string[] = [];
  try {
    const accountKey = await loadOrCreateAccountKey(opts.certsDir, opts.directory, log);
    const client = new acme.Client({ directoryUrl: opts.directory, accountKey });

    stage = 'key';
    const privkey =
      opts.keyType === 'rsa' ? await acme.crypto.createPrivateRsaKey(2048) : await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await acme.crypto.createCsr({ commonName: domains[0], altNames: domains }, privkey);

    stage = 'order';
    log(`requesting certificate for ${domains.join(', ')} from ${opts.directory}`);
    const fullchain = await client.auto({
      csr,
      email: opts.email ?? undefined,
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      // acme-client's self-check fetches http://<domain>:80 through public DNS before asking
      // the CA; the CA's own validation is authoritative and reports the precise reason.
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type !== 'http-01') throw new AcmeError(`unsupported challenge type ${challenge.type}`, 'challenge');
        const file = challengeFile(opts.webroot, challenge.token);
        await mkdirReadable(path.dirname(file));
        await writeFileAtomic(file, keyAuthorization, 0o644);
        written.push(file);
        log(`[${authz.identifier.value}] challenge answer at ${file}`);
        stage = 'validation';
      },
      challengeRemoveFn: async (_authz, challenge) => {
        await fs.rm(challengeFile(opts.webroot, challenge.token), { force: true });
      },
    });

    stage = 'store';
    const info = certInfo(fullchain);
    const meta: CertMeta = {
      domains,
      issuer: info.issuer,
      notAfter: info.notAfter.toISOString(),
      notBefore: info.notBefore.toISOString(),
      serial: info.serial,
      directory: opts.directory,
      email: opts.email,
      keyType: opts.keyType,
      webroot: opts.webroot,
      issuedAt: new Date().toISOString(),
    };
    const keyPem = privkey.toString();
    await storeCertificate(opts.certsDir, meta, fullchain, keyPem);
    log(`stored ${certPaths(opts.certsDir, domains[0]).dir} (serial ${info.serial}, expires ${meta.notAfter})`);
    return { primary: domains[0], fullchain, privkey: keyPem, meta };
  } catch (e) {
    if (e instanceof AcmeError) throw e;
    throw new AcmeError(describeError(e), stage);
  } finally {
    await Promise.all(written.map((f) => fs.rm(f, { force: true })));
  }
}

export interface RenewOptions {
  certsDir: string;
  days: number; // renew when fewer than this many days are left
  force: boolean;
  log?: (line: string) => void;
  now?: Date;
}

export interface RenewResult {
  renewed: string[];
  failed: { primary: string; reason: string }[];
  skipped: { primary: string; daysLeft: number | null }[];
  /** The certificates are stored but the gateway could not be made to load them. */
  reloadError?: string;
}

/**
 * Renews every managed certificate within the window (or all with force), repeating the
 * parameters recorded in meta.json. afterIssue runs once, after all renewals, when at
 * least one succeeded, or when an earlier reload failed (RELOAD_PENDING_FILE).
 */
export async function renew(opts: RenewOptions, hooks: IssueHooks = {}): Promise<RenewResult> {
  const log = opts.log ?? (() => {});
  const pendingBefore = await reloadPending(opts.certsDir);
  const result = await withCertsLock(opts.certsDir, () => renewLocked(opts, log));
  try {
    if (result.renewed.length > 0) {
      await runAfterIssue(opts.certsDir, hooks, `renewed ${result.renewed.join(', ')}`);
    } else if (pendingBefore && hooks.afterIssue) {
      log('certificates stored earlier were never loaded (a reload failed): reloading now');
      await runAfterIssue(opts.certsDir, hooks, 'certificates stored earlier');
    }
  } catch (e) {
    result.reloadError = (e as Error).message;
  }
  return result;
}

async function renewLocked(opts: RenewOptions, log: (line: string) => void): Promise<RenewResult> {
  const result: RenewResult = { renewed: [], failed: [], skipped: [] };
  for (const cert of await listManaged(opts.certsDir)) {
    if (!cert.meta) {
      // not issued by `tls issue` (e.g. a placeholder before the first issuance): nothing to repeat
      log(`${cert.primary}: no meta.json, not managed by tls issue; skipped`);
      result.skipped.push({ primary: cert.primary, daysLeft: cert.info ? daysLeft(cert.info.notAfter, opts.now) : null });
      continue;
    }
    const left = cert.info ? daysLeft(cert.info.notAfter, opts.now) : null;
    const due = opts.force || left === null || left < opts.days || !cert.keyMatch;
    if (!due) {
      result.skipped.push({ primary: cert.primary, daysLeft: left });
      log(`${cert.primary}: ${left} days left, not due`);
      continue;
    }
    log(`${cert.primary}: renewing (${left === null ? 'no readable certificate' : `${left} days left`}${opts.force ? ', forced' : ''})`);
    try {
      await issueLocked({
        domains: cert.meta.domains,
        email: cert.meta.email,
        directory: cert.meta.directory,
        keyType: cert.meta.keyType,
        webroot: cert.meta.webroot,
        certsDir: opts.certsDir,
        log,
      });
      result.renewed.push(cert.primary);
    } catch (e) {
      result.failed.push({ primary: cert.primary, reason: (e as Error).message });
    }
  }
  return result;
}
