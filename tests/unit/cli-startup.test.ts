// The compiled CLI: bin/gatewayctl.js runs lib/gatewayctl.mjs (esbuild bundle of src/,
// rebuilt by the test run's global setup). Covers: the bundle renders every golden case
// exactly like the sources (templates and njs sources resolve from lib/), heavy
// dependencies load only for the commands that use them, the launcher falls back to the
// sources when the bundle is missing or older than src/, the njs bundle built with the CLI
// serves only while njs/ is unchanged, and the memory budget of
// `gatewayctl --version` measured by scripts/measure-cli.sh (wall time is reported by the
// script, not asserted here).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { gatewaySchema } from '../../src/config/schema.ts';
import { FEATURES } from '../../src/features/index.ts';
import { compile, sha256 } from '../../src/build/compile.ts';
import { schemaKey } from '../../src/config/check-schema.ts';
import { NJS_BUNDLE_PATH, njsBundleText } from '../../src/build/njs.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import type { Diagnostic } from '../../src/model/types.ts';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from '../../src/tls/acme.ts';
import { BROTLI_MODULE } from '../../src/runtime/nginx/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'bin', 'gatewayctl.js');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'gw-cli-startup-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const run = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; node?: string[]; cli?: string } = {}) =>
  spawnSync(process.execPath, [...(opts.node ?? []), opts.cli ?? CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: 60_000,
  });

describe('bundled CLI renders like the sources', () => {
  const cases = ['tests/golden', 'examples'].flatMap((base) =>
    readdirSync(path.join(ROOT, base))
      .filter((d) => existsSync(path.join(ROOT, base, d, 'gateway.yaml')))
      .sort()
      .map((d) => path.join(base, d)),
  );
  const modulesDir = path.join(scratch, 'modules');
  mkdirSync(modulesDir);
  writeFileSync(path.join(modulesDir, BROTLI_MODULE), ''); // the golden cases render with brotli available
  const env = { GOLDEN_UPSTREAM_HOST: '10.9.8.7' }; // as tests/golden.test.ts

  it('runs from lib/gatewayctl.mjs', () => {
    expect(existsSync(path.join(ROOT, 'lib', 'gatewayctl.mjs'))).toBe(true);
    const r = run(['--version']);
    expect(r.stderr).toBe(''); // no stale-bundle note: the launcher used the bundle
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  });

  it.each(cases)('%s: gatewayctl build (or validate) gives the golden output', (dir) => {
    const config = path.join(ROOT, dir, 'gateway.yaml');
    const errFile = path.join(ROOT, dir, 'expected-error.txt');
    if (existsSync(errFile)) {
      const r = run(['validate', '--json', '-c', config], { env });
      expect(r.status).toBe(1);
      const diagnostics = (JSON.parse(r.stdout) as { diagnostics: Diagnostic[] }).diagnostics;
      expect(`${diagnostics.map(formatDiagnostic).join('\n')}\n`).toBe(readFileSync(errFile, 'utf8'));
      return;
    }
    const out = path.join(scratch, 'out', dir);
    const r = run(['build', '-c', config, '-o', out, '--modules-dir', modulesDir], { env });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const expDir = path.join(ROOT, dir, 'expected');
    const list = (d: string, base = d): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? list(path.join(d, e.name), base) : [path.relative(base, path.join(d, e.name))]));
    const expected = list(expDir).sort();
    const built = list(out).filter((f) => f !== 'model.json' && f !== NJS_BUNDLE_PATH).sort();
    expect(built).toEqual(expected);
    for (const rel of expected) {
      let text = readFileSync(path.join(out, rel), 'utf8');
      if (rel === 'manifest.json') text = text.replace(/("njs\/gateway\.js": ")[0-9a-f]{64}(")/, '$1(sha256 of the current njs bundle)$2');
      expect(text, rel).toBe(readFileSync(path.join(expDir, rel), 'utf8'));
    }
    // the njs module comes from njs/*.ts located from lib/, bundled by the lazily loaded esbuild
    if (existsSync(path.join(out, NJS_BUNDLE_PATH))) {
      const njs = readFileSync(path.join(out, NJS_BUNDLE_PATH), 'utf8');
      expect(njs).toBe(njsBundleText(exportedHandlers(njs)));
      expect(readFileSync(path.join(out, 'manifest.json'), 'utf8')).toContain(sha256(njs));
    }
  });
});

describe('bundled schema validator (generated by ajv at build time)', () => {
  // The CLI validates with ajv's standalone code generated when it was built; the sources
  // compile the schema at run time. Both must report the same GW201 diagnostics.
  const demo = readFileSync(path.join(ROOT, 'gateway.yaml'), 'utf8');
  const broken: Record<string, string> = {
    'unknown keys, missing key, wrong types, enum, pattern': demo
      .replace('    port: 8080\n', '    prot: 8080\n')
      .replace('balance: least_conn', 'balance: fastest')
      .replace('max_fails: 3', 'max_fails: three')
      .replace('rate: 10r/s', 'rate: 10 per second')
      .replace('streaming: true ', 'streaming: yes-please ')
      .replace('  compression: { gzip: true }', '  compression: { gzip: true, zstd: true }'),
    'wrong shapes (oneOf, arrays, objects)': demo
      .replace('match: { prefix: /api/ }', 'match: { prefix: /api/, exact: /api }')
      .replace('servers: [127.0.0.1:9201]', 'servers: 127.0.0.1:9201')
      .replace('rate_limits: [chat]', 'rate_limits: chat')
      .replace('cors: { origins: ["http://localhost:3000"] }', 'cors: true')
      .replace('retries: { tries: 2, timeout: 5s }', 'retries: [2, 5s]'),
    'top level': demo.replace('version: 1', 'version: 2').replace('\nroutes:', '\nroute:'),
  };
  it('is generated from the schema the sources build from the registered features', () => {
    // the CLI uses its generated validator only for the schema it was made from (same key),
    // compiling the schema otherwise: a key that disagrees would cost every start-up
    const bundle = readFileSync(path.join(ROOT, 'lib', 'gatewayctl.mjs'), 'utf8');
    const key = /precompiledSchemaKey = "([0-9a-f]{64})"/.exec(bundle)?.[1];
    expect(key).toBe(schemaKey(gatewaySchema(FEATURES)));
  });

  it.each(Object.keys(broken))('%s: same diagnostics from the CLI as from the sources', (name) => {
    const file = path.join(scratch, `schema-${Object.keys(broken).indexOf(name)}.yaml`);
    writeFileSync(file, broken[name]);
    const r = run(['validate', '--json', '-c', file]);
    expect(r.status).toBe(1);
    const fromCli = (JSON.parse(r.stdout) as { diagnostics: Diagnostic[] }).diagnostics.map(formatDiagnostic);
    const fromSources = compile(file).diagnostics.map(formatDiagnostic);
    expect(fromCli.filter((l) => l.includes(' GW201 ')).length).toBeGreaterThan(2);
    expect(fromCli).toEqual(fromSources);
  });
});

/** the handlers a build's njs module exports (it exports only those its configuration calls) */
const exportedHandlers = (njs: string): string[] => [...njs.matchAll(/^ {2}([A-Za-z]\w*): gw_\1,?$/gm)].map((m) => m[1]);

describe('njs bundle', () => {
  it('does not depend on the directory gatewayctl runs in', () => {
    // from the sources, so the bundle is made in that process (not the one built with the CLI)
    const cwd = path.join(scratch, 'elsewhere');
    mkdirSync(cwd);
    const r = run(['build', '-c', path.join(ROOT, 'tests/golden/auth-jwt/gateway.yaml'), '-o', 'dist'], { cwd, env: { GATEWAYCTL_FROM_SOURCE: '1' } });
    expect(r.status, r.stderr).toBe(0);
    const njs = readFileSync(path.join(cwd, 'dist', NJS_BUNDLE_PATH), 'utf8');
    expect(njs).toBe(njsBundleText(exportedHandlers(njs)));
  });
});

describe('heavy dependencies load only where used', () => {
  // Lists the CommonJS modules a CLI process loaded (TypeScript and esbuild load through
  // require, acme-client through import() of a CommonJS package: all land in require.cache).
  const probe = path.join(scratch, 'loaded.cjs');
  writeFileSync(
    probe,
    `const Module = require('node:module');
process.on('exit', () => require('node:fs').writeFileSync(process.env.GW_LOADED_OUT, Object.keys(Module._cache).join('\\n')));
`,
  );
  let n = 0;
  function packagesLoaded(args: string[], cwd = ROOT): { status: number | null; stderr: string; packages: Set<string> } {
    const out = path.join(scratch, `loaded-${n++}.txt`);
    const r = run(args, { cwd, node: ['--require', probe], env: { GW_LOADED_OUT: out } });
    const packages = new Set(
      readFileSync(out, 'utf8')
        .split('\n')
        .map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1])
        .filter((x): x is string => !!x),
    );
    return { status: r.status, stderr: r.stderr, packages };
  }
  const HEAVY = ['typescript', 'esbuild', 'acme-client'];

  it.each([
    ['--version'],
    ['validate', '-c', 'gateway.yaml'],
    ['build', '-c', 'gateway.yaml', '-o', path.join(scratch, 'demo-dist')],
    ['tls', 'selfsigned', '--domain', 'localhost', '--out', path.join(scratch, 'ssl')],
    // a config that uses njs: the bundle built with the CLI serves while njs/ is unchanged
    ['build', '-c', 'tests/golden/auth-jwt/gateway.yaml', '-o', path.join(scratch, 'jwt-dist')],
  ])('gatewayctl %s loads none of typescript, esbuild, acme-client', (...args) => {
    const r = packagesLoaded(args);
    expect(r.stderr).not.toContain('through tsx');
    expect(r.status).toBe(0);
    expect(HEAVY.filter((p) => r.packages.has(p))).toEqual([]);
  });

  it('njs-lint loads the TypeScript compiler and esbuild', () => {
    const r = packagesLoaded(['njs-lint']);
    expect(r.status).toBe(0);
    expect(r.packages.has('typescript')).toBe(true);
    expect(r.packages.has('esbuild')).toBe(true);
    expect(r.packages.has('acme-client')).toBe(false);
  });

  it('tls issue loads acme-client', () => {
    const cwd = path.join(scratch, 'acme');
    mkdirSync(cwd);
    // port 9 (discard) on loopback refuses: the command fails after acme-client is loaded
    const r = packagesLoaded(
      ['tls', 'issue', '--domain', 'example.test', '--email', 'ops@example.test', '--directory', 'http://127.0.0.1:9/directory', '--no-reload', '--webroot', 'w', '--certs-dir', 'c'],
      cwd,
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('cannot reach ACME directory');
    expect(r.packages.has('acme-client')).toBe(true);
    expect(r.packages.has('typescript')).toBe(false);
  });

  it("the Let's Encrypt directory constants are acme-client's own", () => {
    const acme = createRequire(import.meta.url)('acme-client') as { directory: { letsencrypt: { production: string; staging: string } } };
    expect(LETSENCRYPT_PRODUCTION).toBe(acme.directory.letsencrypt.production);
    expect(LETSENCRYPT_STAGING).toBe(acme.directory.letsencrypt.staging);
  });

  it('the gateway schema is a valid JSON Schema (the CLI skips this check at start-up)', () => {
    const ajv = new Ajv2020({ strict: false, allowUnionTypes: true });
    expect(ajv.validateSchema(gatewaySchema(FEATURES)), JSON.stringify(ajv.errors)).toBe(true);
  });

  it('a usage error still prints the command help with its examples', () => {
    const r = run(['build', '--no-such-option']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("unknown option '--no-such-option'");
    expect(r.stderr).toContain('Examples:');
    expect(r.stderr).toContain('gatewayctl build -c prod.yaml');
  });
});

describe('launcher', () => {
  // A copy of the project's code (node_modules, templates and njs linked) so sources can be
  // edited and the bundle removed without touching the working tree.
  const copy = path.join(scratch, 'copy');
  mkdirSync(copy);
  for (const d of ['bin', 'src']) cpSync(path.join(ROOT, d), path.join(copy, d), { recursive: true });
  mkdirSync(path.join(copy, 'scripts'));
  cpSync(path.join(ROOT, 'scripts', 'build-cli.mjs'), path.join(copy, 'scripts', 'build-cli.mjs'));
  cpSync(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
  cpSync(path.join(ROOT, 'njs'), path.join(copy, 'njs'), { recursive: true });
  for (const d of ['node_modules', 'templates']) symlinkSync(path.join(ROOT, d), path.join(copy, d));
  const cli = path.join(copy, 'bin', 'gatewayctl.js');
  const build = () => spawnSync(process.execPath, [path.join(copy, 'scripts', 'build-cli.mjs')], { encoding: 'utf8' });
  const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;

  it('runs the bundle when it is current, the sources through tsx when it is missing or stale', () => {
    let r = run(['--version'], { cli });
    expect(r.stderr).toContain('lib/gatewayctl.mjs is missing; running src/ through tsx');
    expect(r.stdout.trim()).toBe(version);

    expect(build().status).toBe(0);
    r = run(['--version'], { cli });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(version);

    // an edit under src/ after the build: the launcher runs the edited sources and says why
    const cliTs = path.join(copy, 'src', 'cli.ts');
    writeFileSync(cliTs, readFileSync(cliTs, 'utf8').replace(".version(VERSION, '-v, --version')", ".version(`${VERSION}-edited`, '-v, --version')"));
    r = run(['--version'], { cli });
    expect(r.stderr).toContain('src/cli.ts is newer than lib/gatewayctl.mjs; running src/ through tsx');
    expect(r.stdout.trim()).toBe(`${version}-edited`);

    // rebuilt: the bundle has the edit, and is used again
    expect(build().status).toBe(0);
    r = run(['--version'], { cli });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`${version}-edited`);
  });

  it('an edit under njs/ after the CLI was built reaches the build output', () => {
    expect(build().status).toBe(0);
    const jwt = path.join(copy, 'njs', 'lib', 'jwt.ts');
    const config = path.join(ROOT, 'tests/golden/auth-jwt/gateway.yaml');
    const njsOut = (out: string) => readFileSync(path.join(out, NJS_BUNDLE_PATH), 'utf8');
    let r = run(['build', '-c', config, '-o', path.join(copy, 'dist-a')], { cli });
    expect(r.status, r.stderr).toBe(0);
    expect(njsOut(path.join(copy, 'dist-a'))).toContain('unsigned tokens are not accepted');
    writeFileSync(jwt, readFileSync(jwt, 'utf8').replace('unsigned tokens are not accepted', 'unsigned tokens are refused (edited)'));
    r = run(['build', '-c', config, '-o', path.join(copy, 'dist-b')], { cli });
    expect(r.stderr).toBe(''); // the CLI bundle is current (src/ unchanged): no fallback
    expect(r.status).toBe(0);
    expect(njsOut(path.join(copy, 'dist-b'))).toContain('unsigned tokens are refused (edited)');
    expect(njsOut(path.join(copy, 'dist-b'))).not.toContain('unsigned tokens are not accepted');
  });
});

describe('scripts/measure-cli.sh', () => {
  it('gatewayctl --version stays under 80 MiB of resident memory', () => {
    const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'measure-cli.sh'), '--no-build', '--runs', '3'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const line = (name: string) => {
      const m = new RegExp(`^${name}\\s+median_wall_ms=(\\d+)\\s+median_cpu_ms=\\d+\\s+max_rss_mib=([\\d.]+)`, 'm').exec(r.stdout);
      expect(m, `${name} line in:\n${r.stdout}`).not.toBeNull();
      return { wallMs: Number(m![1]), rssMib: Number(m![2]) };
    };
    const version = line('--version');
    line('validate');
    line('build');
    expect(version.rssMib).toBeGreaterThan(0);
    expect(version.rssMib).toBeLessThan(80);
  });
});
