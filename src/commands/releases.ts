// `gatewayctl releases`: list deployed releases, newest first, marking the live one.
import { layout, listReleases } from '../deploy/releases.ts';
import { DEFAULT_TARGET } from './deploy.ts';

export const help = `
Lists TARGET/releases newest first: the release name (<sequence>-<UTC time>-<output hash>),
the hash of the input (gateway.yaml) and of the whole output, gatewayctl version, and which
release is live (*) and which rollback would return to (previous). \`rollback --to\` takes
a name, a sequence number (7 or #7), or a unique prefix of a name or either hash.

Examples:
  $ gatewayctl releases
  $ gatewayctl releases --target /etc/gatewayctl --json`;

export interface ReleasesCommandOptions {
  target?: string;
  json?: boolean;
}

export async function run(opts: ReleasesCommandOptions): Promise<number> {
  const L = layout(opts.target ?? DEFAULT_TARGET);
  const list = (await listReleases(L)).reverse();
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(
        list.map((r) => ({ name: r.name, seq: r.seq, time: r.time, inputHash: r.inputHash, outputHash: r.outputHash, inputFile: r.inputFile, version: r.version, certificatePending: r.certificatePending, live: r.live, previous: r.previous, ...(r.error ? { error: r.error } : {}) })),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  if (!list.length) {
    process.stdout.write(`no releases in ${L.releasesDir}\n`);
    return 0;
  }
  const rows = list.map((r) => [r.live ? '*' : ' ', r.name, r.time ?? '?', r.inputHash ? r.inputHash.slice(0, 12) : '?', r.outputHash ? r.outputHash.slice(0, 12) : '?', r.version ?? '?', [r.live ? 'live' : r.previous ? 'previous' : r.error ? `unreadable: ${r.error}` : '', r.certificatePending.length ? `(TLS pending: ${r.certificatePending.join(', ')})` : ''].filter(Boolean).join(' ')]);
  const head = [' ', 'RELEASE', 'TIME (UTC)', 'INPUT', 'OUTPUT', 'VERSION', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  process.stdout.write([fmt(head), ...rows.map(fmt)].join('\n') + '\n');
  return 0;
}
