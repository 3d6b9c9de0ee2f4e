// scripts/lib/debian-mirror.sh: the Debian mirror the provisioning scripts fetch from is the
// host's own (apt configuration in $GATEWAYCTL_APT_DIR, here fixture files in a temp dir),
// or $GATEWAYCTL_DEBIAN_MIRROR; nothing is built in.
import { execFile } from 'node:child_process';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const LIB = path.join(ROOT, 'scripts/lib/debian-mirror.sh');

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

/** An apt configuration directory: relative path → file text. */
async function aptDir(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-apt-'));
  dirs.push(dir);
  await fs.mkdir(path.join(dir, 'sources.list.d'), { recursive: true });
  for (const [rel, text] of Object.entries(files)) await fs.writeFile(path.join(dir, rel), text);
  return dir;
}

function sh(script: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = { ...process.env };
  delete clean.GATEWAYCTL_DEBIAN_MIRROR;
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { env: { ...clean, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const mirror = (env: Record<string, string>) => sh(`. '${LIB}' && debian_mirror`, env);

describe('debian_mirror', () => {
  it('one-line sources.list: the first Debian archive, past deb-src, options and the security archive', async () => {
    const dir = await aptDir({
      'sources.list': `# mirror of the company
deb-src http://src.corp.example/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg arch=amd64] http://security.corp.example/debian-security bookworm-security main
deb http://mirror.corp.example/debian-security/ bookworm-security main
   deb [ arch=amd64 ] http://mirror.corp.example/debian/ bookworm main contrib
deb http://other.corp.example/debian bookworm-updates main
`,
    });
    const r = await mirror({ GATEWAYCTL_APT_DIR: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('http://mirror.corp.example/debian\n');
  });

  it('deb822 *.sources: skips disabled, source-only, security and third-party stanzas; first URI of the stanza', async () => {
    const dir = await aptDir({
      'sources.list.d/debian.sources': `Types: deb
URIs: http://off.corp.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://src.corp.example/debian
Suites: bookworm

Types: deb
URIs: https://deb.nodesource.example/node_20.x
Suites: nodistro
Components: main

Types: deb
# the security archive
URIs: https://mirror.corp.example/debian-security
Suites: bookworm-security
Components: main

types: deb deb-src
uris: https://mirror.corp.example/debian https://second.corp.example/debian
suites: bookworm bookworm-updates
components: main
signed-by:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NlbNtN
 -----END PGP PUBLIC KEY BLOCK-----
`,
    });
    const r = await mirror({ GATEWAYCTL_APT_DIR: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('https://mirror.corp.example/debian\n');
  });

  it("follows apt's reading order: sources.list, then sources.list.d by name (*.list and *.sources alike)", async () => {
    const parts = {
      'sources.list.d/00-third-party.list': 'deb https://packages.vendor.example/apt stable-vendor main\n',
      'sources.list.d/10-corp.sources': 'Types: deb\nURIs: http://ten.corp.example/debian\nSuites: trixie\nComponents: main\n',
      'sources.list.d/20-debian.list': 'deb http://twenty.corp.example/debian trixie main\n',
      'sources.list.d/05-ignored.txt': 'deb http://ignored.corp.example/debian trixie main\n',
    };
    expect((await mirror({ GATEWAYCTL_APT_DIR: await aptDir(parts) })).stdout).toBe('http://ten.corp.example/debian\n');
    const withMain = await aptDir({ ...parts, 'sources.list': 'deb http://main.corp.example/debian stable main\n' });
    expect((await mirror({ GATEWAYCTL_APT_DIR: withMain })).stdout).toBe('http://main.corp.example/debian\n');
  });

  it('GATEWAYCTL_DEBIAN_MIRROR overrides the apt configuration; a malformed one is refused', async () => {
    const dir = await aptDir({ 'sources.list': 'deb http://mirror.corp.example/debian bookworm main\n' });
    const r = await mirror({ GATEWAYCTL_APT_DIR: dir, GATEWAYCTL_DEBIAN_MIRROR: 'https://override.corp.example/debian/' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('https://override.corp.example/debian\n');
    for (const bad of ['ftp://old.corp.example/debian', 'http://a b', 'mirror.corp.example/debian', 'http://x/debian;rm']) {
      const b = await mirror({ GATEWAYCTL_APT_DIR: dir, GATEWAYCTL_DEBIAN_MIRROR: bad });
      expect(b.code, bad).toBe(1);
      expect(b.stdout).toBe('');
      expect(b.stderr).toContain('GATEWAYCTL_DEBIAN_MIRROR must be an http:// or https:// URI');
    }
  });

  it('no Debian archive (nothing configured, only third-party or Ubuntu repositories): a clear error, no fallback host', async () => {
    const cases = [
      await aptDir({}),
      await aptDir({ 'sources.list': '# empty\n', 'sources.list.d/vendor.list': 'deb https://packages.vendor.example/apt cloud-sdk main\n' }),
      await aptDir({ 'sources.list': 'deb http://archive.ubuntu.example/ubuntu jammy main\ndeb http://mirror.corp.example/debian-security bookworm-security main\n' }),
    ];
    for (const dir of cases) {
      const r = await mirror({ GATEWAYCTL_APT_DIR: dir });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`no Debian archive found in the host's apt configuration (${dir}/sources.list`);
      expect(r.stderr).toContain('set GATEWAYCTL_DEBIAN_MIRROR');
    }
  });
});

describe('provisioning scripts', () => {
  it('provision-runtime.sh takes its mirror from debian_mirror and stops with its error when there is none', async () => {
    const apt = await aptDir({});
    const rt = path.join(apt, 'runtime'); // never the shared .runtime
    const r = await sh(`bash '${path.join(ROOT, 'scripts/provision-runtime.sh')}' --quiet`, {
      GATEWAYCTL_APT_DIR: apt,
      GATEWAYCTL_RUNTIME_DIR: rt,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no Debian archive found');
    expect(r.stderr).toContain('provision-runtime: cannot choose a Debian mirror');
    await expect(fs.stat(rt)).rejects.toThrow();
    await expect(fs.stat(`${rt}.tmp`)).rejects.toThrow();
  });

  it('no script names a package mirror host', () => {
    const files = [
      ...readdirSync(path.join(ROOT, 'scripts')).map((f) => path.join(ROOT, 'scripts', f)),
      ...readdirSync(path.join(ROOT, 'scripts/lib')).map((f) => path.join(ROOT, 'scripts/lib', f)),
    ].filter((f) => /\.(sh|ts)$/.test(f));
    expect(files.map((f) => path.basename(f))).toContain('provision-runtime.sh');
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      expect(text, f).not.toMatch(/\b(deb|ftp|security|archive|httpredir|cdn-fastly)\.debian\.(org|net)\b/);
      expect(text, f).not.toMatch(/https?:\/\/[a-z0-9.-]+\/debian\b/i);
    }
  });
});
