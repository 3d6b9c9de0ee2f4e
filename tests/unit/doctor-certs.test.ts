// doctor warns about managed certificates expiring within 14 days, located through the
// config's tls.acme certs_dir.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createSelfSigned } from '../../src/tls/index.ts';

const CLI = path.resolve('bin/gatewayctl.js');

async function managedPair(certsDir: string, domain: string, days: number): Promise<void> {
  const r = await createSelfSigned({ domains: [domain], outDir: path.join(certsDir, '.tmp'), days });
  mkdirSync(path.join(certsDir, domain), { recursive: true });
  copyFileSync(r.cert, path.join(certsDir, domain, 'fullchain.pem'));
  copyFileSync(r.key, path.join(certsDir, domain, 'privkey.pem'));
}

function doctor(dir: string) {
  return spawnSync('node', [CLI, 'doctor', '-c', 'gateway.yaml'], { cwd: dir, encoding: 'utf8' });
}

describe('doctor: managed certificates', () => {
  it('warns (exit 0) when a certificate expires within 14 days, and is quiet when it does not', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-doctor-'));
    writeFileSync(
      path.join(dir, 'gateway.yaml'),
      'version: 1\ntls:\n  acme: { email: ops@example.com, domains: [soon.example.com], certs_dir: certs }\nlisteners:\n  - { name: web, port: 8080 }\nroutes:\n  - { match: { prefix: / }, respond: { status: 200 } }\n',
    );
    await managedPair(path.join(dir, 'certs'), 'soon.example.com', 5);
    const soon = doctor(dir);
    expect(soon.status, soon.stdout + soon.stderr).toBe(0);
    expect(soon.stdout).toMatch(/\[warn\] certs\s+soon\.example\.com: .*expires/);

    await managedPair(path.join(dir, 'certs'), 'soon.example.com', 90);
    const fine = doctor(dir);
    expect(fine.stdout).toMatch(/\[ok  \] certs/);
  });
});
