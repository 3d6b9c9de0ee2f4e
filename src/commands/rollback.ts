// `gatewayctl rollback`: make an earlier release live again (test, switch, reload, /ready).
import { DeployError, rollback } from '../deploy/deploy.ts';
import { DEFAULT_TARGET, formatFailure, parsePositiveInt, pendingNote, withSignalGuard } from './deploy.ts';

export const help = `
Returns to the previous release (the one live before the last deploy or rollback), or to
--to RELEASE: the full name or the sequence number shown by \`gatewayctl releases\`
(7, #7 or 0007), or a unique prefix (4+ characters) of a name, an output hash or an input
hash. A prefix that matches several releases (e.g. the input hash of a config deployed
once before and once after its ACME certificate was issued) is refused, listing them. Runs the same sequence as deploy: nginx -t, atomic switch of
TARGET/current, reload (or start), wait for /ready to report that release's input hash;
on failure the release that was live is restored. Running rollback twice toggles back.

Examples:
  $ gatewayctl rollback
  $ gatewayctl rollback --to 0007-20261123T165515.123Z-0123456789ab
  $ gatewayctl rollback --to 7                             # by sequence number
  $ gatewayctl rollback --to 01234567                      # by output or input hash prefix
  $ sudo gatewayctl rollback --target /etc/gatewayctl --nginx /usr/sbin/nginx --prefix /etc/nginx \\
        --reload-cmd 'systemctl reload nginx'

Exit status: 0 rolled back or already live, 1 failed, 2 bad usage.`;

export interface RollbackCommandOptions {
  to?: string;
  target?: string;
  nginx?: string;
  prefix?: string;
  reloadCmd?: string;
  readyTimeout?: number | string; // seconds
  quiet?: boolean;
  json?: boolean;
}

export async function run(opts: RollbackCommandOptions): Promise<number> {
  let readyTimeoutMs: number;
  try {
    readyTimeoutMs = parsePositiveInt(opts.readyTimeout, '--ready-timeout', 15) * 1000;
  } catch (e) {
    process.stderr.write(`rollback: ${(e as Error).message}\n`);
    return 2;
  }
  const log = opts.quiet || opts.json ? () => {} : (l: string) => process.stderr.write(`rollback: ${l}\n`);
  try {
    const r = await withSignalGuard('rollback', () =>
      rollback({
        to: opts.to,
        target: opts.target ?? DEFAULT_TARGET,
        nginx: opts.nginx,
        prefix: opts.prefix,
        reloadCmd: opts.reloadCmd,
        readyTimeoutMs,
        log,
      }),
    );
    if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else if (r.status === 'unchanged') process.stdout.write(`release ${r.release} is already live; nothing to do\n`);
    else process.stdout.write(`rolled back to ${r.release} (input ${r.inputHash.slice(0, 12)})${r.previous ? `; previous: ${r.previous}` : ''}\n`);
    if (!opts.json && r.status === 'rolled-back' && r.certificatePending?.length) process.stderr.write(`${pendingNote(r.release, r.certificatePending)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof DeployError) {
      if (opts.json) process.stdout.write(`${JSON.stringify({ status: 'failed', step: e.step, error: e.message, detail: e.detail, recovery: e.recovery }, null, 2)}\n`);
      process.stderr.write(`${formatFailure('rollback', e)}\n`);
      return 1;
    }
    throw e;
  }
}
