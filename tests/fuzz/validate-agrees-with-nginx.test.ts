// The rule `validate` must keep: every config it accepts passes `nginx -t`, and every
// rejection carries file:line:col and a GW code. A seeded, bounded mutation fuzzer over
// the examples and golden inputs checks it; each accepted mutation goes through the
// `gatewayctl check` path (real nginx -t, unresolvable hosts and missing certificates
// substituted, everything else as built).
//
//   GATEWAYCTL_FUZZ_SEED=1234 npx vitest run tests/fuzz     # another seed
//   GATEWAYCTL_FUZZ_RUNS=2000 npx vitest run tests/fuzz     # more mutations
//   GATEWAYCTL_FUZZ_ONLY=17 ...                              # one mutation of a run
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { checkConfig } from '../../src/commands/check.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { mutate } from './mutate.ts';

const SEED = Number(process.env.GATEWAYCTL_FUZZ_SEED ?? 20261201);
const RUNS = Number(process.env.GATEWAYCTL_FUZZ_RUNS ?? 1500);
const ONLY = process.env.GATEWAYCTL_FUZZ_ONLY === undefined ? null : Number(process.env.GATEWAYCTL_FUZZ_ONLY);
const ENV = { GOLDEN_UPSTREAM_HOST: '10.9.8.7' }; // the golden include-env case
const CONCURRENCY = 2;

const root = path.resolve(__dirname, '../..');
const caseDirs = ['tests/golden', 'examples'].flatMap((d) =>
  readdirSync(path.join(root, d))
    .filter((c) => existsSync(path.join(root, d, c, 'gateway.yaml')))
    .sort()
    .map((c) => path.join(root, d, c)),
);

const scratch = mkdtempSync(path.join(os.tmpdir(), 'gatewayctl-fuzz-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Failure {
  index: number;
  base: string;
  describe: string;
  problem: string;
}

describe(`validate agrees with nginx -t (seed ${SEED}, ${RUNS} mutations)`, () => {
  it('accepted mutations pass nginx -t; rejected ones are positioned with a GW code', async () => {
    const bases = caseDirs.map((dir) => {
      const copy = path.join(scratch, path.basename(dir));
      cpSync(dir, copy, { recursive: true, filter: (src) => !src.includes(`${path.sep}expected`) });
      return { dir: copy, name: path.relative(root, dir), text: readFileSync(path.join(dir, 'gateway.yaml'), 'utf8') };
    });
    Object.assign(process.env, ENV);
    const failures: Failure[] = [];
    let accepted = 0;
    const indexes = ONLY === null ? Array.from({ length: RUNS }, (_, i) => i) : [ONLY];
    const one = async (index: number) => {
      const base = bases[index % bases.length];
      const m = mutate(base.text, SEED * 1_000_003 + index);
      const file = path.join(base.dir, `fuzz-${index}.yaml`);
      writeFileSync(file, m.text);
      const fail = (problem: string) => failures.push({ index, base: base.name, describe: m.describe, problem });
      try {
        const r = compile(file, { env: ENV, availableModules: { brotli: true } });
        if (!r.ok) {
          const errors = r.diagnostics.filter((x) => x.severity === 'error');
          if (!errors.length) fail('rejected without an error diagnostic');
          for (const x of errors) {
            if (!/^GW\d{3}$/.test(x.code) || !x.at || !x.at.file || x.at.line < 1 || x.at.col < 1) fail(`unpositioned rejection: ${formatDiagnostic(x)}`);
          }
          return;
        }
        accepted++;
        const c = await checkConfig({ config: file });
        if (!c.ok) fail(`validate accepted it, nginx -t refused it:\n${c.diagnostics.filter((x) => x.severity === 'error').map(formatDiagnostic).join('\n')}\n${c.nginxOutput.trim()}`);
      } catch (e) {
        fail(`threw: ${(e as Error).stack ?? e}`);
      } finally {
        rmSync(file, { force: true });
      }
    };
    const queue = [...indexes];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) await one(i);
      }),
    );
    const report = failures
      .sort((a, b) => a.index - b.index)
      .slice(0, Number(process.env.GATEWAYCTL_FUZZ_REPORT ?? 12))
      .map((f) => `#${f.index} ${f.base}: ${f.describe}\n  ${f.problem.replace(/\n/g, '\n  ')}`)
      .join('\n');
    expect(
      failures.length,
      `${failures.length} of ${indexes.length} mutations broke the rule (seed ${SEED}; reproduce one with GATEWAYCTL_FUZZ_SEED=${SEED} GATEWAYCTL_FUZZ_ONLY=<#>):\n${report}`,
    ).toBe(0);
    // the run must exercise both sides of the rule
    if (ONLY === null) expect(accepted, 'accepted mutations').toBeGreaterThan(indexes.length / 10);
  }, 120_000);
});
