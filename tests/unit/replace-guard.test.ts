// Directories (and certificate files) gatewayctl replaces: only when absent, empty or its own.
// `build -o .` used to wipe the project and exit 0.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertReplaceable, previousBuild, UnsafeReplaceError } from '../../src/build/guard.ts';
import { run as tlsRun } from '../../src/commands/tls.ts';
import { preparePrefix } from '../../src/runtime/nginx/index.ts';
import { createSelfSigned, findOpenssl, storeCertificate, type CertMeta } from '../../src/tls/index.ts';

const CLI = path.resolve('bin/gatewayctl.js');
const gw = (args: string[], cwd: string) => spawnSync('node', [CLI, ...args], { cwd, encoding: 'utf8' });
const dirs: string[] = [];
const temp = (tag: string) => {
  const d = mkdtempSync(path.join(os.tmpdir(), `gw-guard-${tag}-`));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every entry under dir (files with their content, directories, links with their target). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const p = path.join(dir, r);
      if (e.isSymbolicLink()) out[r] = `-> ${readlinkSync(p)}`;
      else if (e.isDirectory()) {
        out[r] = '<dir>';
        walk(r);
      } else out[r] = readFileSync(p, 'utf8');
    }
  };
  walk('');
  return out;
}

function project(): string {
  const dir = temp('proj');
  cpSync('gateway.yaml', path.join(dir, 'gateway.yaml'));
  writeFileSync(path.join(dir, 'notes.md'), 'my notes\n');
  return dir;
}

describe('build -o: only an absent or empty directory, or a previous build, is replaced', () => {
  it('refuses `build -o .` (the project itself): exit 1, GW610, every file intact', () => {
    const dir = project();
    const before = snapshot(dir);
    const r = gw(['build', '-o', '.'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/GW610 refusing to replace build output directory .*: it is not empty and is not a gatewayctl build \(no manifest\.json\); nothing was changed/);
    expect(snapshot(dir)).toEqual(before);
    expect(readdirSync(path.dirname(dir)).filter((f) => f.startsWith(path.basename(dir) + '.'))).toEqual([]);
  });

  it('refuses a directory with user files, and a file given as -o', () => {
    const dir = project();
    mkdirSync(path.join(dir, 'docs/sub'), { recursive: true });
    writeFileSync(path.join(dir, 'docs/sub/plan.txt'), 'plan\n');
    writeFileSync(path.join(dir, 'docs/manifest.json'), '{"name":"not a build"}\n');
    const before = snapshot(dir);
    const r = gw(['build', '-o', 'docs'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/GW610 .*docs: its manifest\.json is not a gatewayctl build manifest/);
    const f = gw(['build', '-o', 'notes.md'], dir);
    expect(f.status).toBe(1);
    expect(f.stderr).toMatch(/GW610 .*notes\.md: it is a file, not a directory/);
    expect(snapshot(dir)).toEqual(before);
  });

  it('builds into an absent directory, an empty one, and over its own previous build', () => {
    const dir = project();
    expect(gw(['build', '-o', 'dist'], dir).status).toBe(0);
    expect(existsSync(path.join(dir, 'dist/manifest.json'))).toBe(true);
    mkdirSync(path.join(dir, 'empty'));
    expect(gw(['build', '-o', 'empty'], dir).status).toBe(0);
    expect(existsSync(path.join(dir, 'empty/nginx.conf'))).toBe(true);
    // a previous build (older content, a file the new build no longer writes is listed in its manifest)
    writeFileSync(path.join(dir, 'dist/conf.d/99-old.conf'), '# old\n');
    const man = JSON.parse(readFileSync(path.join(dir, 'dist/manifest.json'), 'utf8'));
    man.files['conf.d/99-old.conf'] = 'x';
    writeFileSync(path.join(dir, 'dist/manifest.json'), JSON.stringify(man));
    const again = gw(['build', '-o', 'dist'], dir);
    expect(again.status, again.stderr).toBe(0);
    expect(existsSync(path.join(dir, 'dist/conf.d/99-old.conf'))).toBe(false);
    expect(readFileSync(path.join(dir, 'notes.md'), 'utf8')).toBe('my notes\n');
  });

  it('refuses a previous build that someone added a file to', () => {
    const dir = project();
    expect(gw(['build'], dir).status).toBe(0);
    writeFileSync(path.join(dir, 'dist/README.local'), 'keep me\n');
    const before = snapshot(dir);
    const r = gw(['build'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/GW610 .*dist: it holds files that are not part of the previous build: README\.local/);
    expect(snapshot(dir)).toEqual(before);
  });

  it('up -o . is refused before nginx is started', () => {
    const dir = project();
    const before = snapshot(dir);
    const r = gw(['up', '-o', '.', '--prefix', path.join(temp('prefix'), 'p')], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/GW610 refusing to replace build output directory/);
    expect(r.stdout).not.toMatch(/nginx pid/);
    expect(snapshot(dir)).toEqual(before);
  });

  it('a symbolic link is judged by the directory it points at', () => {
    const dir = project();
    symlinkSync(dir, path.join(temp('link'), 'out'));
    const link = path.join(dirs[dirs.length - 1], 'out');
    expect(() => assertReplaceable(link, 'build output directory', previousBuild)).toThrow(UnsafeReplaceError);
    rmSync(dir, { recursive: true });
    expect(() => assertReplaceable(link, 'build output directory', previousBuild)).toThrow(/dangling symbolic link/);
  });
});

describe('nginx prefix: the modules link', () => {
  it('never replaces a regular file named modules', async () => {
    const prefix = temp('prefix');
    writeFileSync(path.join(prefix, 'modules'), 'mine\n');
    await expect(preparePrefix(prefix, temp('mods'))).rejects.toThrow(/modules exists and is not a directory or symbolic link/);
    expect(readFileSync(path.join(prefix, 'modules'), 'utf8')).toBe('mine\n');
    // gatewayctl's own stale link is still replaced
    rmSync(path.join(prefix, 'modules'));
    symlinkSync('/nonexistent', path.join(prefix, 'modules'));
    const mods = temp('mods');
    await preparePrefix(prefix, mods);
    expect(lstatSync(path.join(prefix, 'modules')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path.join(prefix, 'modules'))).toBe(mods);
  });
});

/** A certificate issued by a throwaway CA (not self-signed), with its key. */
async function caIssued(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const ca = await createSelfSigned({ domains: ['ca.test'], outDir: path.join(dir, 'ca') });
  const key = path.join(dir, `${name}.leaf.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.leaf.crt`);
  const o = findOpenssl();
  execFileSync(o, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], { stdio: 'ignore' });
  execFileSync(o, ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', '7', '-days', '2', '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

const capture = () => {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
};

describe('tls selfsigned --out: only a previous self-signed pair is overwritten', () => {
  it('refuses to overwrite a CA-issued certificate or a lone key; regenerates its own pair', async () => {
    const w = temp('tls');
    const out = path.join(w, 'ssl');
    mkdirSync(out);
    const real = await caIssued(w, 'gw.test');
    cpSync(real.cert, path.join(out, 'gw.test.crt'));
    cpSync(real.key, path.join(out, 'gw.test.key'));
    const before = snapshot(out);
    const c = capture();
    expect(await tlsRun('selfsigned', { domain: ['gw.test'], out }, {}, c.io)).toBe(1);
    expect(c.err.join('\n')).toMatch(/GW611 refusing to replace file .*gw\.test\.crt: it is not a self-signed certificate/);
    expect(snapshot(out)).toEqual(before);

    writeFileSync(path.join(out, 'lone.test.key'), readFileSync(real.key));
    const c2 = capture();
    expect(await tlsRun('selfsigned', { domain: ['lone.test'], out }, {}, c2.io)).toBe(1);
    expect(c2.err.join('\n')).toMatch(/GW611 .*lone\.test\.key: a private key exists without its certificate/);
    expect(readFileSync(path.join(out, 'lone.test.key'), 'utf8')).toBe(readFileSync(real.key, 'utf8'));

    expect(await tlsRun('selfsigned', { domain: ['dev.test'], out }, {}, capture().io)).toBe(0);
    const first = readFileSync(path.join(out, 'dev.test.key'), 'utf8');
    expect(await tlsRun('selfsigned', { domain: ['dev.test'], out }, {}, capture().io)).toBe(0);
    expect(readFileSync(path.join(out, 'dev.test.key'), 'utf8')).not.toBe(first);
  });
});

describe('managed certificate directories (tls issue / renew)', () => {
  const meta = (name: string): CertMeta => ({
    domains: [name],
    issuer: 'CN=test',
    notAfter: new Date(Date.now() + 86_400_000).toISOString(),
    notBefore: new Date().toISOString(),
    serial: '01',
    directory: 'https://127.0.0.1:1/dir',
    email: null,
    keyType: 'ec',
    webroot: '/tmp',
    issuedAt: new Date().toISOString(),
  });

  it('refuses a directory holding a certificate it did not issue, before contacting the CA', async () => {
    const certsDir = temp('certs');
    const dir = path.join(certsDir, 'gw.test');
    mkdirSync(dir);
    const real = await caIssued(temp('ca'), 'gw.test');
    cpSync(real.cert, path.join(dir, 'fullchain.pem'));
    cpSync(real.key, path.join(dir, 'privkey.pem'));
    const before = snapshot(certsDir);
    const c = capture();
    // the directory URL is unreachable: the refusal must come first
    expect(await tlsRun('issue', { domain: ['gw.test'], email: 'ops@gw.test', directory: 'https://127.0.0.1:1/dir', certsDir }, {}, c.io)).toBe(1);
    expect(c.err.join('\n')).toMatch(/GW610 refusing to replace certificate directory .*gw\.test: it holds a certificate gatewayctl did not issue/);
    await expect(storeCertificate(certsDir, meta('gw.test'), 'chain', 'key')).rejects.toThrow(UnsafeReplaceError);
    expect(snapshot(certsDir)).toEqual(before);
  });

  it('refuses unknown files; replaces a self-signed placeholder, its own previous certificate and an empty directory', async () => {
    const certsDir = temp('certs');
    mkdirSync(path.join(certsDir, 'x.test'));
    writeFileSync(path.join(certsDir, 'x.test/cert.pem'), 'someone else\n');
    await expect(storeCertificate(certsDir, meta('x.test'), 'chain', 'key')).rejects.toThrow(/GW610 .*x\.test: it holds files gatewayctl does not manage: cert\.pem/);
    expect(readdirSync(path.join(certsDir, 'x.test'))).toEqual(['cert.pem']);

    const ph = await createSelfSigned({ domains: ['ph.test'], outDir: temp('ph') });
    mkdirSync(path.join(certsDir, 'ph.test'));
    cpSync(ph.cert, path.join(certsDir, 'ph.test/fullchain.pem'));
    cpSync(ph.key, path.join(certsDir, 'ph.test/privkey.pem'));
    await storeCertificate(certsDir, meta('ph.test'), 'chain-1', 'key-1');
    expect(readFileSync(path.join(certsDir, 'ph.test/fullchain.pem'), 'utf8')).toBe('chain-1');
    await storeCertificate(certsDir, meta('ph.test'), 'chain-2', 'key-2'); // now its own (meta.json)
    expect(readFileSync(path.join(certsDir, 'ph.test/privkey.pem'), 'utf8')).toBe('key-2');

    mkdirSync(path.join(certsDir, 'new.test'));
    await storeCertificate(certsDir, meta('new.test'), 'chain', 'key');
    expect(readFileSync(path.join(certsDir, 'new.test/fullchain.pem'), 'utf8')).toBe('chain');
  });
});
