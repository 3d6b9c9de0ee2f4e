// A gateway.yaml compiled by the real compiler, written like `gatewayctl build` writes it and
// served by real nginx (tests/support/nginx.ts startGateway). Two entry points:
//   buildAndStart()  a config path (its text optionally replaced) with ${VAR}s filled from `env`
//   startProject()   a fresh project directory written from inputs (gateway.yaml, keys, JWKS…)
// Both compile in-process, write the build under a temp directory, wait until every listed
// port accepts connections, and remove the directory on stop() (unless
// GATEWAYCTL_KEEP_PREFIX is set). echoGatewayForSuite() wraps buildAndStart() for the common
// suite: one echo upstream, a public and a status port, started before the file's tests.

import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compile, type CompileOptions } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import type { GatewayModel } from '../../src/model/types.ts';
import { afterAll, beforeAll } from 'vitest';
import { startGateway, stopAllGateways, type Gateway } from './nginx.ts';
import { freePorts } from './ports.ts';
import { startEchoUpstream, type EchoUpstream } from './upstreams.ts';

export interface BuiltGateway {
  gw: Gateway;
  model: GatewayModel;
  files: Record<string, string>;
  distDir: string;
  stop(): Promise<void>;
}

export interface Project extends Omit<BuiltGateway, 'model'> {
  /** The project directory (inputs; the build is in dist/ below it). */
  dir: string;
}

export function compileOrThrow(configPath: string, env: Record<string, string>, text?: string): { model: GatewayModel; files: Record<string, string> } {
  const r = compile(configPath, { env, text });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (!r.ok || !r.files || !r.model || errors.length) {
    const lines = r.diagnostics.map((d) => `${d.code} ${d.severity} ${d.at ? `${d.at.path} (${d.at.line}:${d.at.col})` : ''}: ${d.message}`);
    throw new Error(`compile ${configPath} failed:\n${lines.join('\n')}`);
  }
  return { model: r.model, files: r.files };
}

/** Write `files` to `<work>/dist` and start nginx on it; `work` is removed if nginx does not come up, and by stop(). */
async function serveBuild(work: string, files: Record<string, string>, ports: number[]) {
  const distDir = path.join(work, 'dist');
  writeBuild(distDir, files);
  let gw: Gateway;
  try {
    gw = await startGateway({ distDir, ports });
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    throw err;
  }
  return {
    gw,
    distDir,
    stop: async () => {
      await gw.stop();
      if (!process.env.GATEWAYCTL_KEEP_PREFIX) await rm(work, { recursive: true, force: true });
    },
  };
}

/**
 * Build `configPath` with `env` and start nginx on it; waits until every port in `ports`
 * accepts connections. `text` replaces the file's content (the path still names it).
 */
export async function buildAndStart(opts: { configPath: string; env: Record<string, string>; ports: number[]; text?: string }): Promise<BuiltGateway> {
  const { model, files } = compileOrThrow(opts.configPath, opts.env, opts.text);
  const work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-it-'));
  return { model, files, ...(await serveBuild(work, files, opts.ports)) };
}

/** Write `inputs` (relative path → text) into a fresh directory, build gateway.yaml there and start nginx. */
export async function startProject(inputs: Record<string, string>, ports: number[], opts: CompileOptions = {}): Promise<Project> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gatewayctl-auth-'));
  for (const [rel, text] of Object.entries(inputs)) await writeFile(path.join(dir, rel), text);
  const r = compile(path.join(dir, 'gateway.yaml'), opts);
  if (!r.ok || !r.files) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`compile failed:\n${r.diagnostics.map(formatDiagnostic).join('\n')}`);
  }
  // workers running as nobody (tests as root) must traverse the project directory
  await chmod(dir, 0o755);
  return { dir, files: r.files, ...(await serveBuild(dir, r.files, ports)) };
}

export interface EchoGatewaySuite {
  g: BuiltGateway;
  upstream: EchoUpstream;
  /** the public listener's port (${PORT_GW}) */
  port: number;
  /** the status listener's port (${PORT_STATUS}) */
  statusPort: number;
}

/**
 * For a test file: an echo upstream ("app") and the gateway built from `text` (its ${PORT_GW},
 * ${PORT_STATUS} and ${UPSTREAM} filled in), started in beforeAll and stopped in afterAll. The
 * returned object's fields are set once beforeAll has run.
 */
export function echoGatewayForSuite(configPath: string, text: string): EchoGatewaySuite {
  const s = {} as EchoGatewaySuite;
  beforeAll(async () => {
    s.upstream = await startEchoUpstream({ id: 'app' });
    [s.port, s.statusPort] = await freePorts(2);
    s.g = await buildAndStart({
      configPath,
      text,
      env: { PORT_GW: String(s.port), PORT_STATUS: String(s.statusPort), UPSTREAM: s.upstream.address },
      ports: [s.port, s.statusPort],
    });
  });
  afterAll(async () => {
    await s.g?.stop();
    await s.upstream?.close();
    await stopAllGateways();
  });
  return s;
}
