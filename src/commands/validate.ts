// `gatewayctl validate`: schema + semantic checks, every problem at once, positioned.
import { compile } from '../build/compile.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';

export const help = `
Examples:
  $ gatewayctl validate                      # checks ./gateway.yaml
  $ gatewayctl validate -c examples/llm-ha/gateway.yaml
  $ gatewayctl validate --json | jq .        # machine-readable diagnostics for CI

Exit status: 0 when clean (warnings allowed), 1 when any error is reported.`;

export interface ValidateOptions {
  config: string;
  json?: boolean;
}

export async function run(opts: ValidateOptions): Promise<number> {
  const r = compile(opts.config);
  const errors = r.diagnostics.filter((x) => x.severity === 'error').length;
  const warnings = r.diagnostics.length - errors;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ok: errors === 0, diagnostics: r.diagnostics }, null, 2)}\n`);
    return errors ? 1 : 0;
  }
  for (const x of r.diagnostics) (x.severity === 'error' ? process.stderr : process.stdout).write(`${formatDiagnostic(x)}\n`);
  if (errors) {
    process.stderr.write(`${opts.config}: ${errors} error(s), ${warnings} warning(s)\n`);
    return 1;
  }
  process.stdout.write(`${opts.config}: valid${warnings ? ` (${warnings} warning(s))` : ''}\n`);
  return 0;
}
