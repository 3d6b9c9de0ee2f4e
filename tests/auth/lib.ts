// Helpers for the auth integration tests: a project directory with gateway.yaml, a keys
// store and a JWKS document, compiled with the real compiler and served by real nginx.
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compile, type CompileOptions } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { startGateway, type Gateway } from '../support/nginx.ts';

export interface AuthProject {
  dir: string;
  distDir: string;
  files: Record<string, string>;
  gw: Gateway;
  stop(): Promise<void>;
}

/** Write `inputs` (relative path → text) into a fresh directory, build gateway.yaml there and start nginx. */
export async function startProject(inputs: Record<string, string>, ports: number[], opts: CompileOptions = {}): Promise<AuthProject> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gatewayctl-auth-'));
  for (const [rel, text] of Object.entries(inputs)) await writeFile(path.join(dir, rel), text);
  const r = compile(path.join(dir, 'gateway.yaml'), opts);
  if (!r.ok || !r.files) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`compile failed:\n${r.diagnostics.map(formatDiagnostic).join('\n')}`);
  }
  const distDir = path.join(dir, 'dist');
  writeBuild(distDir, r.files);
  // workers running as nobody (tests as root) must traverse the project directory
  await chmod(dir, 0o755);
  let gw: Gateway;
  try {
    gw = await startGateway({ distDir, ports });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    distDir,
    files: r.files,
    gw,
    stop: async () => {
      await gw.stop();
      if (!process.env.GATEWAYCTL_KEEP_PREFIX) await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function fileMode(p: string): Promise<number> {
  return (await stat(p)).mode & 0o777;
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function request(url: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, { ...init, headers });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, text, json };
}
