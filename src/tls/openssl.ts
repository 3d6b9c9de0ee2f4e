// Locating and running an openssl binary for certificate work that Node's crypto module
// cannot do (creating X.509 certificates). Order: GATEWAYCTL_OPENSSL, the project runtime
// provisioned by scripts/provision-runtime.sh (.runtime/bin/openssl), then `openssl` on PATH.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../version.ts';

const projectRoot = PROJECT_ROOT;

export function findOpenssl(): string {
  const fromEnv = process.env.GATEWAYCTL_OPENSSL;
  if (fromEnv) return fromEnv;
  const runtimeDir = process.env.GATEWAYCTL_RUNTIME_DIR ?? path.join(projectRoot, '.runtime');
  const runtime = path.join(runtimeDir, 'bin', 'openssl');
  if (existsSync(runtime)) return runtime;
  return 'openssl';
}

export interface OpensslResult {
  stdout: string;
  stderr: string;
}

/** Runs openssl with the given arguments; rejects with stderr in the message on failure. */
export function openssl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<OpensslResult> {
  const bin = findOpenssl();
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException;
          const why = e.code === 'ENOENT' ? `openssl not found (${bin}); run scripts/provision-runtime.sh` : stderr.trim() || e.message;
          reject(new Error(`openssl ${args[0]} failed: ${why}`));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
