// Features that need a newer nginx or njs than the target has are refused at build time with a
// positioned GW503 naming the need, the target's version and how to get the newer runtime;
// checked against the two real project runtimes (nginx 1.26 + njs 0.8.9, nginx 1.30 + njs 1.0).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileForTarget } from '../../src/commands/build.ts';
import type { Feature, VersionNeed } from '../../src/core/feature.ts';
import { FEATURES } from '../../src/features/index.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { PROJECT_ROOT } from '../../src/version.ts';

const OLDEST = path.join(PROJECT_ROOT, '.runtime/bin/nginx');
const NEXT = path.join(PROJECT_ROOT, '.runtime-next/bin/nginx');

/** Routes named needs-njs / needs-nginx ask for newer runtimes, as a future feature would. */
const demo: Feature = {
  name: 'version-demo',
  summary: 'test feature with version needs',
  requires: (m) =>
    m.routes.flatMap((r): VersionNeed[] =>
      r.name === 'needs-njs'
        ? [{ njs: '0.9.1', why: `routes[${r.index}] shared-dict state`, at: r.at }]
        : r.name === 'needs-nginx'
          ? [{ nginx: '1.29.6', why: `routes[${r.index}] sticky cookie`, at: r.at }]
          : [],
    ),
};
const REGISTRY = [...FEATURES, demo];

function config(routeName: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-gate-'));
  const file = path.join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001]
routes:
  - name: ${routeName}
    match: { prefix: /a/ }
    upstream: api
`,
  );
  return file;
}

describe('target version gating', () => {
  it('refuses an njs need the oldest runtime does not meet, at the key that asks for it', async () => {
    const r = await compileForTarget({ config: config('needs-njs'), nginx: OLDEST }, REGISTRY);
    expect(r.ok).toBe(false);
    const lines = r.diagnostics.map(formatDiagnostic);
    const gw = lines.find((l) => l.includes('GW503'));
    expect(gw, lines.join('\n')).toMatch(/gateway\.yaml:9:5 error GW503 routes\[0\]: routes\[0\] shared-dict state needs njs >= 0\.9\.1; the target .*\.runtime\/bin\/nginx has njs 0\.8\.9: provision the newer runtime \(bash scripts\/provision-runtime\.sh --next\)/);
    expect(r.files).toBeNull();
  });

  it('refuses an nginx need likewise, naming the target nginx version', async () => {
    const r = await compileForTarget({ config: config('needs-nginx'), nginx: OLDEST }, REGISTRY);
    expect(r.ok).toBe(false);
    expect(r.diagnostics.map(formatDiagnostic).join('\n')).toMatch(/GW503 routes\[0\]: routes\[0\] sticky cookie needs nginx >= 1\.29\.6; the target .* has nginx 1\.26\.3/);
  });

  it('builds for the newer runtime, and the manifest records what the output needs', async () => {
    for (const name of ['needs-njs', 'needs-nginx']) {
      const r = await compileForTarget({ config: config(name), nginx: NEXT }, REGISTRY);
      expect(r.ok, r.diagnostics.map(formatDiagnostic).join('\n')).toBe(true);
      const man = JSON.parse(r.files!['manifest.json']);
      expect(man.requires).toEqual(name === 'needs-njs' ? { nginx: '1.24.0', njs: '0.9.1' } : { nginx: '1.29.6', njs: null });
    }
  });

  it('probes nothing when no feature needs more than the baseline', async () => {
    // a target path that does not exist: a probe would fail, so success shows none ran
    const r = await compileForTarget({ config: config('plain'), nginx: '/nonexistent/nginx' }, REGISTRY);
    expect(r.ok, r.diagnostics.map(formatDiagnostic).join('\n')).toBe(true);
  });
});
