// Golden cases as folders: each holds gateway.yaml beside either expected/ (the exact
// generated files) or expected-error.txt (the exact diagnostics). Cases live under
// tests/golden/ and examples/. Regenerate with UPDATE_GOLDEN=1 and review the diff like code.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile, sha256 } from '../src/build/compile.ts';
import { formatDiagnostic } from '../src/model/diagnostics.ts';
import { NJS_BUNDLE_PATH, njsBundleText } from '../src/build/njs.ts';

/** manifest.json lists the bundle's sha256: checked here, stored as a placeholder in golden files. */
function stable(rel: string, text: string, bundle: string | undefined): string {
  if (rel !== 'manifest.json') return text;
  return text.replace(/("njs\/gateway\.js": ")([0-9a-f]{64})(")/, (_all, a: string, h: string, b: string) => {
    expect(h, 'manifest sha256 of the njs bundle').toBe(sha256(bundle ?? ''));
    return `${a}(sha256 of the current njs bundle)${b}`;
  });
}

const UPDATE = process.env.UPDATE_GOLDEN === '1';
const ENV = { GOLDEN_UPSTREAM_HOST: '10.9.8.7' }; // used by the env-interpolation case

function cases(root: string): string[] {
  return readdirSync(root)
    .filter((d) => existsSync(path.join(root, d, 'gateway.yaml')))
    .sort()
    .map((d) => path.join(root, d));
}

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))],
  );
}

describe.each([...cases('tests/golden'), ...cases('examples')])('golden %s', (dir) => {
  it('renders exactly the expected output', () => {
    const r = compile(path.join(dir, 'gateway.yaml'), { env: ENV, availableModules: { brotli: true } });
    const errFile = path.join(dir, 'expected-error.txt');
    const expDir = path.join(dir, 'expected');
    if (UPDATE) {
      rmSync(expDir, { recursive: true, force: true });
      rmSync(errFile, { force: true });
      if (r.ok) {
        for (const [rel, text] of Object.entries(r.files!)) {
          if (rel === NJS_BUNDLE_PATH) continue; // the njs bundle is checked against the sources, not stored
          mkdirSync(path.dirname(path.join(expDir, rel)), { recursive: true });
          writeFileSync(path.join(expDir, rel), stable(rel, text, r.files![NJS_BUNDLE_PATH]));
        }
      } else {
        writeFileSync(errFile, `${r.diagnostics.map(formatDiagnostic).join('\n')}\n`);
      }
    }
    if (existsSync(errFile)) {
      expect(r.ok).toBe(false);
      expect(`${r.diagnostics.map(formatDiagnostic).join('\n')}\n`).toBe(readFileSync(errFile, 'utf8'));
      return;
    }
    expect(r.diagnostics.filter((x) => x.severity === 'error').map(formatDiagnostic)).toEqual([]);
    const expected = listFiles(expDir).sort();
    // the njs bundle follows njs/*.ts; only its presence (for models that use njs) is golden,
    // and it exports exactly the handlers the configuration calls (each one costs every njs
    // request): none missing, none extra
    const bundle = r.files![NJS_BUNDLE_PATH];
    if (bundle !== undefined) {
      expect(r.files!['nginx.conf']).toContain('js_import gateway from gateway.js;');
      const called = new Set<string>();
      for (const [rel, text] of Object.entries(r.files!)) {
        if (rel.endsWith('.conf')) for (const m of text.matchAll(/\b(?:js_set\s+\S+|js_content|js_body_filter|js_header_filter|js_periodic|js_access|js_preread|js_filter)\s+gateway\.(\w+)/g)) called.add(m[1]);
      }
      const exported = [...bundle.matchAll(/^ {2}([A-Za-z]\w*): gw_\1,?$/gm)].map((m) => m[1]);
      expect(exported.sort(), 'njs handlers exported vs called').toEqual([...called].sort());
      expect(bundle).toBe(njsBundleText(exported));
    }
    expect(Object.keys(r.files!).filter((f) => f !== NJS_BUNDLE_PATH).sort()).toEqual(expected);
    for (const rel of expected) {
      expect(stable(rel, r.files![rel], bundle), `${dir}/expected/${rel}`).toBe(readFileSync(path.join(expDir, rel), 'utf8'));
    }
  });
});

// Every golden output must also be accepted by real nginx (`gatewayctl check` path:
// unresolvable hosts and missing certificates substituted, everything else as built).
import { checkConfig } from '../src/commands/check.ts';

describe.each([...cases('tests/golden'), ...cases('examples')].filter((d) => existsSync(path.join(d, 'expected'))))('nginx -t %s', (dir) => {
  it('passes nginx -t', async () => {
    const prev = { ...process.env };
    Object.assign(process.env, ENV);
    try {
      const r = await checkConfig({ config: path.join(dir, 'gateway.yaml') });
      expect(r.ok, `${r.nginxOutput}\n${r.diagnostics.map(formatDiagnostic).join('\n')}`).toBe(true);
      // nginx sizes a hash itself when the config's sizes cannot hold it, with a warning on
      // every start and reload ("could not build optimal variables_hash, you should increase…")
      expect(r.nginxOutput).not.toMatch(/could not build/);
    } finally {
      for (const k of Object.keys(ENV)) if (!(k in prev)) delete process.env[k];
    }
  });
});
