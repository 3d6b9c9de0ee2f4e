// `gatewayctl init`: write a commented starter gateway.yaml (never overwrites without --force).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../version.ts';

export interface InitOptions {
  config: string;
  force?: boolean;
}

export async function run(opts: InitOptions): Promise<number> {
  if (existsSync(opts.config) && !opts.force) {
    process.stderr.write(`${opts.config} already exists; use --force to overwrite\n`);
    return 1;
  }
  const text = readFileSync(path.join(PROJECT_ROOT, 'templates/starter.gateway.yaml'), 'utf8');
  writeFileSync(opts.config, text);
  process.stdout.write(`wrote ${opts.config}\nnext: gatewayctl validate -c ${opts.config} && gatewayctl up -c ${opts.config} --demo\n`);
  return 0;
}
