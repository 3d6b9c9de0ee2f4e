// build: deterministic output, atomic swap, failures change nothing, --check detects drift,
// and the published JSON Schema matches the one the CLI validates with.
import { mkdtempSync, readFileSync, writeFileSync, cpSync, existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { schemaJson } from '../../scripts/write-schema.ts';

const CLI = path.resolve('bin/gatewayctl.js');
const gw = (args: string[], cwd: string) => spawnSync('node', [CLI, ...args], { cwd, encoding: 'utf8' });

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

describe('build', () => {
  it('is deterministic: same input, byte-identical files', () => {
    const a = compile('gateway.yaml');
    const b = compile('gateway.yaml');
    expect(a.ok).toBe(true);
    expect(a.files).toEqual(b.files);
    const manifest = JSON.parse(a.files!['manifest.json']);
    expect(manifest.input.sha256).toBe(a.model!.source.hash);
    expect(Object.keys(manifest.files)).toContain('conf.d/40-servers.conf');
    expect(a.files!['nginx.conf']).not.toMatch(/\d{4}-\d{2}-\d{2}T/); // no timestamps
  });

  it('writes, then a broken config changes nothing and exits non-zero with positions', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-build-'));
    cpSync('gateway.yaml', path.join(dir, 'gateway.yaml'));
    const ok = gw(['build'], dir);
    expect(ok.status, ok.stderr).toBe(0);
    const before = snapshot(path.join(dir, 'dist'));
    expect(Object.keys(before)).toContain('nginx.conf');

    const broken = readFileSync(path.join(dir, 'gateway.yaml'), 'utf8').replace('upstream: api', 'upstream: billing');
    writeFileSync(path.join(dir, 'gateway.yaml'), broken);
    const bad = gw(['build'], dir);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^gateway\.yaml:\d+:\d+ error GW204 routes\[2\]\.upstream: unknown upstream "billing" \(defined: llm, api\)$/m);
    expect(bad.stderr).toContain('dist left unchanged');
    expect(snapshot(path.join(dir, 'dist'))).toEqual(before);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-') || f.includes('.old-'))).toEqual([]);

    const v = gw(['validate'], dir);
    expect(v.status).toBe(1);
    expect(v.stderr).toContain('GW204');
  });

  it('--check exits 1 when the output on disk is stale, 0 when fresh', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-check-'));
    cpSync('gateway.yaml', path.join(dir, 'gateway.yaml'));
    expect(gw(['build'], dir).status).toBe(0);
    expect(gw(['build', '--check'], dir).status).toBe(0);
    writeFileSync(path.join(dir, 'gateway.yaml'), readFileSync(path.join(dir, 'gateway.yaml'), 'utf8').replace('rate: 10r/s', 'rate: 11r/s'));
    const stale = gw(['build', '--check'], dir);
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain('conf.d/10-limits.conf');
    // model.json beside the build gives `diff --against` its semantic summary
    expect(existsSync(path.join(dir, 'dist', 'model.json'))).toBe(true);
    const diff = gw(['diff', '--against', 'dist'], dir);
    expect(diff.stdout).toContain('rate limit per_ip: 10r/s → 11r/s (loosened)');
    writeFileSync(path.join(dir, 'dist', 'extra.conf'), '');
    expect(gw(['build', '--check'], dir).stderr).toContain('extra.conf');
  });

  it('init writes a starter that validates, and refuses to overwrite without --force', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-init-'));
    expect(gw(['init'], dir).status).toBe(0);
    expect(existsSync(path.join(dir, 'gateway.yaml'))).toBe(true);
    expect(gw(['validate'], dir).status).toBe(0);
    const again = gw(['init'], dir);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('--force');
    expect(gw(['init', '--force'], dir).status).toBe(0);
  });

  it('every command has --help with examples, and --version prints the version', () => {
    for (const c of ['init', 'validate', 'build', 'check', 'up', 'doctor']) {
      const h = gw([c, '--help'], '.');
      expect(h.status, c).toBe(0);
      expect(h.stdout, c).toContain('Examples:');
    }
    const v = execFileSync('node', [CLI, '--version'], { encoding: 'utf8' }).trim();
    expect(v).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });

  it('published schema/gateway.schema.json is in sync (run: npx tsx scripts/write-schema.ts)', () => {
    expect(readFileSync('schema/gateway.schema.json', 'utf8')).toBe(schemaJson());
  });
});
