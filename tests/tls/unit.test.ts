// Self-signed certificates, status/warnings and argument handling; no network needed.
import { X509Certificate } from 'node:crypto';
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/commands/tls.ts';
import { certificateWarnings, createSelfSigned, keyMatchesCert, normalizeDomains, withCertsLock, type CertMeta } from '../../src/tls/index.ts';
import { answer } from './dns.ts';
import { requireRuntime, tempDir } from './harness.ts';
import { freePort } from '../support/ports.ts';

let work: string;
beforeAll(async () => {
  requireRuntime();
  work = await tempDir('gw-tls-unit-');
});
afterAll(async () => {
  if (work) await fs.rm(work, { recursive: true, force: true });
});

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

/** A managed-certificate directory built from a self-signed certificate. */
async function managed(certsDir: string, name: string, days: number, keyFrom?: string): Promise<void> {
  const ss = await createSelfSigned({ domains: [name], outDir: path.join(work, 'src-' + name), days });
  const dir = path.join(certsDir, name);
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(ss.cert, path.join(dir, 'fullchain.pem'));
  await fs.copyFile(keyFrom ?? ss.key, path.join(dir, 'privkey.pem'));
  const x = new X509Certificate(await fs.readFile(ss.cert));
  const meta: CertMeta = {
    domains: [name],
    issuer: x.issuer,
    notAfter: new Date(x.validTo).toISOString(),
    notBefore: new Date(x.validFrom).toISOString(),
    serial: x.serialNumber,
    directory: 'https://127.0.0.1:1/dir',
    email: null,
    keyType: 'ec',
    webroot: path.join(work, 'webroot'),
    issuedAt: new Date().toISOString(),
  };
  await fs.writeFile(path.join(dir, 'meta.json'), JSON.stringify(meta));
}

describe('tls selfsigned', () => {
  it('writes an EC P-256 certificate with every name as SAN and a 0600 key, and prints yaml', async () => {
    const out = path.join(work, 'ssl');
    const c = capture();
    const code = await run('selfsigned', { domain: ['gw.test', 'api.gw.test', '127.0.0.1'], out }, {}, c.io);
    expect(code, c.err.join('\n')).toBe(0);
    const cert = path.join(out, 'gw.test.crt');
    const key = path.join(out, 'gw.test.key');
    expect((statSync(key).mode & 0o777).toString(8)).toBe('600');
    const x = new X509Certificate(await fs.readFile(cert));
    expect(x.subjectAltName).toBe('DNS:gw.test, DNS:api.gw.test, IP Address:127.0.0.1');
    expect(x.publicKey.asymmetricKeyType).toBe('ec');
    expect(x.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(x.ca).toBe(false);
    expect(keyMatchesCert(await fs.readFile(cert), await fs.readFile(key))).toBe(true);
    const yaml = c.out.join('\n');
    expect(yaml).toContain(`tls: { cert: ${JSON.stringify(cert)}, key: ${JSON.stringify(key)} }`);
    expect(yaml).toContain('server_names: ["gw.test", "api.gw.test"]');
  });

  it('rsa on request; invalid names are refused', async () => {
    const r = await createSelfSigned({ domains: ['rsa.gw.test'], outDir: path.join(work, 'rsa'), keyType: 'rsa' });
    expect(new X509Certificate(await fs.readFile(r.cert)).publicKey.asymmetricKeyType).toBe('rsa');
    const c = capture();
    expect(await run('selfsigned', { domain: ['bad name'], out: path.join(work, 'x') }, {}, c.io)).toBe(1);
    expect(c.err.join('\n')).toMatch(/invalid domain name/);
    expect(await run('selfsigned', {}, {}, capture().io)).toBe(2);
  });
});

describe('tls status and certificateWarnings', () => {
  it('warns about certificates expiring within 14 days and about key mismatches', async () => {
    const certsDir = path.join(work, 'managed');
    await managed(certsDir, 'soon.gw.test', 5);
    await managed(certsDir, 'fine.gw.test', 300);
    const other = await createSelfSigned({ domains: ['other.gw.test'], outDir: path.join(work, 'other') });
    await managed(certsDir, 'mismatch.gw.test', 300, other.key);
    await fs.mkdir(path.join(certsDir, 'account'), { recursive: true }); // not a certificate

    const w = await certificateWarnings(certsDir);
    expect(w.map((x) => [x.primary, x.code])).toEqual([
      ['mismatch.gw.test', 'key-mismatch'],
      ['soon.gw.test', 'expiring'],
    ]);
    expect(w[1].message).toMatch(/expires in 4 days/);
    const later = new Date(Date.now() + 10 * 86_400_000);
    expect((await certificateWarnings(certsDir, later)).find((x) => x.primary === 'soon.gw.test')?.code).toBe('expired');
    expect(await certificateWarnings(path.join(work, 'nope'))).toEqual([]);

    const c = capture();
    expect(await run('status', { certsDir, json: true }, {}, c.io)).toBe(0);
    const list = JSON.parse(c.out.join('\n'));
    expect(list.map((s: { primary: string; keyMatch: boolean; daysLeft: number }) => [s.primary, s.keyMatch, s.daysLeft])).toEqual([
      ['fine.gw.test', true, 299],
      ['mismatch.gw.test', false, 299],
      ['soon.gw.test', true, 4],
    ]);
    const t = capture();
    await run('status', { certsDir }, {}, t.io);
    expect(t.out.join('\n')).toContain('key:     DOES NOT MATCH certificate');
  });

  it('renew with no managed certificates exits 0; status says so', async () => {
    const c = capture();
    expect(await run('renew', { certsDir: path.join(work, 'empty') }, {}, c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/no managed certificates/);
  });

  it('renew skips a certificate directory without meta.json (placeholder) and exits 0', async () => {
    const certsDir = path.join(work, 'placeholder');
    const ss = await createSelfSigned({ domains: ['ph.gw.test'], outDir: path.join(work, 'ph-src'), days: 3 });
    await fs.mkdir(path.join(certsDir, 'ph.gw.test'), { recursive: true });
    await fs.copyFile(ss.cert, path.join(certsDir, 'ph.gw.test/fullchain.pem'));
    await fs.copyFile(ss.key, path.join(certsDir, 'ph.gw.test/privkey.pem'));
    const c = capture();
    let reloaded = 0;
    expect(await run('renew', { certsDir }, { afterIssue: async () => void reloaded++ }, c.io)).toBe(0);
    expect(reloaded).toBe(0);
    expect(c.err.join('\n')).toMatch(/ph\.gw\.test: no meta\.json, not managed by tls issue; skipped/);
    expect((await certificateWarnings(certsDir)).map((w) => w.code)).toEqual(['expiring']);
  });
});

describe('tls issue arguments', () => {
  it('requires --domain and --email; refuses wildcards for HTTP-01', async () => {
    const c = capture();
    expect(await run('issue', { email: 'a@b.c' }, {}, c.io)).toBe(2);
    expect(await run('issue', { domain: ['gw.test'] }, {}, c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/--email is required/);
    expect(() => normalizeDomains(['gw.test', '*.gw.test'])).toThrow(/DNS-01/);
    expect(normalizeDomains(['GW.test.', 'gw.test', 'www.gw.test'])).toEqual(['gw.test', 'www.gw.test']);
    expect(await run('issue', { domain: ['gw.test'], email: 'a@b.c', keyType: 'dsa' }, {}, c.io)).toBe(1);
    expect(c.err.at(-1)).toMatch(/--key-type must be ec or rsa/);
  });

  it('an unreachable ACME directory fails fast with the network reason and writes nothing', async () => {
    const c = capture();
    const certsDir = path.join(work, 'unreachable');
    const port = await freePort();
    const t0 = Date.now();
    const code = await run('issue', { domain: ['gw.test'], email: 'a@b.c', directory: `https://127.0.0.1:${port}/dir`, certsDir }, {}, c.io);
    expect(code).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(c.err.join('\n')).toContain(`tls issue: cannot reach ACME directory https://127.0.0.1:${port}/dir: ECONNREFUSED`);
    expect(await fs.readdir(certsDir)).toEqual([]);
  });
});

describe('certificate directory lock', () => {
  it('refuses while a live process holds it, takes over a stale one, releases after use', async () => {
    const dir = path.join(work, 'locked');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, '.lock'), String(process.ppid));
    await expect(withCertsLock(dir, async () => 1)).rejects.toThrow(/another gatewayctl tls run \(pid \d+\)/);
    const c = capture();
    expect(await run('renew', { certsDir: dir }, {}, c.io)).toBe(1);
    expect(c.err.join('\n')).toMatch(/another gatewayctl tls run/);
    await fs.writeFile(path.join(dir, '.lock'), '2147483646'); // no such process
    expect(await withCertsLock(dir, async () => 42)).toBe(42);
    expect(await fs.readdir(dir)).toEqual([]);
  });
});

describe('test DNS responder', () => {
  it('answers A with 127.0.0.1 and other types with NODATA', () => {
    const q = (type: number) =>
      Buffer.concat([
        Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
        Buffer.from([2, 0x67, 0x77, 4, 0x74, 0x65, 0x73, 0x74, 0]),
        Buffer.from([0, type, 0, 1]),
      ]);
    const a = answer(q(1))!;
    expect(a.readUInt16BE(0)).toBe(0x1234);
    expect(a.readUInt16BE(6)).toBe(1);
    expect([...a.subarray(-4)]).toEqual([127, 0, 0, 1]);
    expect(answer(q(28))!.readUInt16BE(6)).toBe(0);
  });
});

describe('systemd renewal units', () => {
  const ini = (text: string) => {
    const sections: Record<string, Record<string, string>> = {};
    let cur = '';
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (!t || t.startsWith('#')) continue;
      const sec = /^\[(\w+)\]$/.exec(t);
      if (sec) sections[(cur = sec[1])] = {};
      else {
        const kv = /^(\w+)=(.*)$/.exec(t);
        expect(kv, `bad line: ${line}`).not.toBeNull();
        sections[cur][kv![1]] = kv![2];
      }
    }
    return sections;
  };
  it('service runs `gatewayctl tls renew` once; timer fires twice daily, persistent', async () => {
    const root = path.resolve(import.meta.dirname, '..', '..');
    const svc = ini(await fs.readFile(path.join(root, 'scripts/gatewayctl-renew.service'), 'utf8'));
    expect(svc.Service.Type).toBe('oneshot');
    expect(svc.Service.ExecStart).toMatch(/gatewayctl tls renew --days 30$/);
    expect(svc.Service.WorkingDirectory).toBeTruthy();
    const timer = ini(await fs.readFile(path.join(root, 'scripts/gatewayctl-renew.timer'), 'utf8'));
    expect(timer.Timer.OnCalendar).toBe('*-*-* 00,12:00:00');
    expect(timer.Timer.Persistent).toBe('true');
    expect(timer.Install.WantedBy).toBe('timers.target');
  });
});

describe('shipped renewal unit (scripts/gatewayctl-renew.service)', () => {
  // systemd keeps the last assignment of a setting; [Service] only
  async function serviceSettings(): Promise<Map<string, string>> {
    const text = await fs.readFile(path.join(import.meta.dirname, '../../scripts/gatewayctl-renew.service'), 'utf8');
    const settings = new Map<string, string>();
    let section = '';
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#') || line.startsWith(';')) continue;
      const sec = /^\[(.+)\]$/.exec(line);
      if (sec) {
        section = sec[1]!;
        continue;
      }
      const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (kv && section === 'Service') settings.set(kv[1]!, kv[2]!);
    }
    return settings;
  }

  it('leaves the certificate directory, webroot, deploy target and nginx prefix writable', async () => {
    const s = await serviceSettings();
    // full/strict make /etc (or everything) read-only; ProtectHome hides or freezes /home
    expect(['true', 'yes', 'no', 'false', undefined]).toContain(s.get('ProtectSystem'));
    expect(['no', 'false', undefined]).toContain(s.get('ProtectHome'));
    expect(s.has('ReadOnlyPaths')).toBe(false);
    expect(s.has('InaccessiblePaths')).toBe(false);
    const wd = s.get('WorkingDirectory') ?? '';
    expect(wd).not.toMatch(/^\/(usr|boot)(\/|$)/);
  });

  it('runs tls renew, which reloads the serving gateway itself', async () => {
    const s = await serviceSettings();
    expect(s.get('ExecStart')).toMatch(/gatewayctl tls renew\b/);
    expect(s.get('ExecStart')).not.toMatch(/--no-reload/);
    expect(s.get('Type')).toBe('oneshot');
  });
});
