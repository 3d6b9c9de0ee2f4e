// `gatewayctl deploy`: install a build as a new release and make nginx serve it, with
// automatic return to the previous release when any step fails.
import { deploy, DeployError, STEP_TEXT } from '../deploy/deploy.ts';

export const help = `
Copies the build (default dist/) into TARGET/releases/<seq>-<UTC time>-<output hash>, runs
\`nginx -t\` on it, proves it in a throwaway nginx on shadow loopback ports (its /ready must
report the new input hash, its health path answer 200) before any client sees it, points
TARGET/current at it atomically, reloads nginx (SIGHUP to the
master in PREFIX/run/nginx.pid) or starts it, and waits until the readiness endpoint from
manifest.json (e.g. http://127.0.0.1:8080/ready) reports the new input hash. If any step
fails, TARGET/current goes back to the previous release, nginx reloads it, and the command
exits 1 naming the failed step and nginx's error text. Deploying a build identical to the
live release does nothing; one identical to an older release makes that release live again
instead of copying it twice. TARGET/deploy.lock keeps deploys and rollbacks from overlapping.

nginx always runs as: nginx -p PREFIX/ -c TARGET/current/nginx.conf

Examples:
  $ gatewayctl build && gatewayctl deploy                 # dist/ → .gatewayctl/deploy, project nginx
  $ gatewayctl deploy --from dist --target /srv/gateway --keep 10

  System nginx managed by systemd (unit runs: nginx -p /etc/nginx/ -c /etc/gatewayctl/current/nginx.conf):
  $ sudo gatewayctl deploy --target /etc/gatewayctl --nginx /usr/sbin/nginx --prefix /etc/nginx \\
        --reload-cmd 'systemctl reload nginx'

  Docker (docker/README.md): build the image from dist/ instead; inside a running container
  $ gatewayctl deploy --target /etc/gatewayctl --nginx /usr/sbin/nginx --prefix /etc/nginx

Exit status: 0 deployed or already live, 1 failed (previous release restored), 2 bad usage.`;

export interface DeployCommandOptions {
  from?: string;
  target?: string;
  nginx?: string;
  prefix?: string;
  keep?: number | string;
  reloadCmd?: string;
  readyTimeout?: number | string; // seconds
  quiet?: boolean;
  json?: boolean;
}

export const DEFAULT_TARGET = '.gatewayctl/deploy';

export function parsePositiveInt(v: number | string | undefined, name: string, dflt: number, min = 1): number {
  if (v === undefined || v === '') return dflt;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${name} must be an integer >= ${min} (got ${v})`);
  return n;
}

/**
 * While a deploy/rollback runs, a first SIGINT/SIGTERM only warns: stopping between the
 * switch and the readiness check would leave an unverified release live and a stale lock.
 * A second one exits at once (130).
 */
export async function withSignalGuard<T>(command: string, fn: () => Promise<T>): Promise<T> {
  let seen = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (seen) process.exit(130);
    seen = true;
    process.stderr.write(`${command}: ${sig} received; finishing (a failure still restores the previous release). Send it again to abort now.\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Said whenever a release without its ACME certificate goes live: it serves plain HTTP only. */
export function pendingNote(release: string, listeners: string[]): string {
  return `note: release ${release} was built before the ACME certificate was issued: listener(s) ${listeners.join(', ')} serve plain HTTP only (ACME challenges and 503) until a release with the certificate is live`;
}

export function formatFailure(command: string, e: DeployError): string {
  const lines = [`${command} failed at step "${STEP_TEXT[e.step] ?? e.step}": ${e.message}`];
  if (e.detail) lines.push(...e.detail.split('\n').map((l) => `  ${l}`));
  if (e.recovery) lines.push(`recovery: ${e.recovery}`);
  return lines.join('\n');
}

export async function run(opts: DeployCommandOptions): Promise<number> {
  let keep: number;
  let readyTimeoutMs: number;
  try {
    keep = parsePositiveInt(opts.keep, '--keep', 5);
    readyTimeoutMs = parsePositiveInt(opts.readyTimeout, '--ready-timeout', 15) * 1000;
  } catch (e) {
    process.stderr.write(`deploy: ${(e as Error).message}\n`);
    return 2;
  }
  const log = opts.quiet || opts.json ? () => {} : (l: string) => process.stderr.write(`deploy: ${l}\n`);
  try {
    const r = await withSignalGuard('deploy', () =>
      deploy({
        from: opts.from ?? 'dist',
        target: opts.target ?? DEFAULT_TARGET,
        nginx: opts.nginx,
        prefix: opts.prefix,
        keep,
        reloadCmd: opts.reloadCmd,
        readyTimeoutMs,
        log,
      }),
    );
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    } else if (r.status === 'unchanged') {
      process.stdout.write(`release ${r.release} (input ${r.inputHash.slice(0, 12)}) is already live; nothing to do${r.started ? ' (nginx was not running and has been started)' : ''}\n`);
    } else if (r.reused) {
      process.stdout.write(`deployed ${r.release} again (identical build; input ${r.inputHash.slice(0, 12)})${r.started ? ', nginx started' : ''}${r.previous ? `; previous: ${r.previous}` : ''}\n`);
    } else {
      process.stdout.write(`deployed ${r.release} (input ${r.inputHash.slice(0, 12)})${r.started ? ', nginx started' : ''}${r.previous ? `; previous: ${r.previous}` : ''}\n`);
      if (r.pruned.length) process.stdout.write(`pruned ${r.pruned.length} old release(s)\n`);
    }
    if (!opts.json && r.certificatePending?.length) process.stderr.write(`${pendingNote(r.release, r.certificatePending)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof DeployError) {
      if (opts.json) process.stdout.write(`${JSON.stringify({ status: 'failed', step: e.step, error: e.message, detail: e.detail, recovery: e.recovery }, null, 2)}\n`);
      process.stderr.write(`${formatFailure('deploy', e)}\n`);
      return 1;
    }
    throw e;
  }
}
