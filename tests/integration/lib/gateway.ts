// Compile a gateway.yaml (with ${VAR} placeholders filled from `env`) through the real
// compiler, write the build to a temp directory and start real nginx on it.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compile } from '../../../src/build/compile.ts';
import { writeBuild } from '../../../src/build/write.ts';
import type { GatewayModel } from '../../../src/model/types.ts';
import { startGateway, type Gateway } from '../../support/nginx.ts';

export interface BuiltGateway {
  gw: Gateway;
  model: GatewayModel;
  files: Record<string, string>;
  distDir: string;
  stop(): Promise<void>;
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

/**
 * Build `configPath` with `env` and start nginx on it; waits until every port in `ports`
 * accepts connections. `text` replaces the file's content (the path still names it).
 */
export async function buildAndStart(opts: { configPath: string; env: Record<string, string>; ports: number[]; text?: string }): Promise<BuiltGateway> {
  const { model, files } = compileOrThrow(opts.configPath, opts.env, opts.text);
  const work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-it-'));
  const distDir = path.join(work, 'dist');
  writeBuild(distDir, files);
  let gw: Gateway;
  try {
    gw = await startGateway({ distDir, ports: opts.ports });
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    throw err;
  }
  return {
    gw,
    model,
    files,
    distDir,
    stop: async () => {
      await gw.stop();
      if (!process.env.GATEWAYCTL_KEEP_PREFIX) await rm(work, { recursive: true, force: true });
    },
  };
}
