// doctor checks a build against the target nginx: the manifest says which nginx and njs
// versions the output needs (http2 on → nginx 1.25.1; njs features → njs 0.8).
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { buildCheck, type DoctorReport } from '../../src/commands/doctor.ts';

function built(config: string): string {
  const r = compile(config, { availableModules: { brotli: false } });
  expect(r.ok, JSON.stringify(r.diagnostics)).toBe(true);
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'gw-doctor-build-')), 'dist');
  writeBuild(dir, r.files!);
  return dir;
}

const target = (nginxVersion: string, njsVersion: string | null): DoctorReport => ({
  ok: true,
  nginx: null,
  nginxVersion,
  njsVersion,
  checks: [],
});

describe('doctor: does the target run this build?', () => {
  it('an njs build on a target with njs 0.7.9 fails, naming what it needs', () => {
    const dist = built('tests/golden/auth-api-key/gateway.yaml');
    const c = buildCheck(target('1.26.3', '0.7.9'), dist)!;
    expect(c.status).toBe('fail');
    expect(c.summary).toContain('needs njs >= 0.8.0, target has 0.7.9');
    expect(buildCheck(target('1.26.3', null), dist)!.summary).toContain('target has none');
    expect(buildCheck(target('1.26.3', '0.8.9'), dist)!.status).toBe('ok');
  });

  it('HTTP/2 on TLS needs nginx 1.25.1; a plain build runs on 1.24', () => {
    const tls = built('examples/llm-ha/gateway.yaml');
    expect(buildCheck(target('1.24.0', null), tls)!.summary).toContain('needs nginx >= 1.25.1, target has 1.24.0');
    expect(buildCheck(target('1.27.4', null), tls)!.status).toBe('ok');
    const plain = built('examples/chat-and-models/gateway.yaml');
    // chat-and-models loads njs (its body-keyed cache digests the body): give the target njs too
    expect(buildCheck(target('1.24.0', '0.8.9'), plain)!.status).toBe('ok');
  });
});
