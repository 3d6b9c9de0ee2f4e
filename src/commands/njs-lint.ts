// `gatewayctl njs-lint`: check the njs sources and their bundle against the njs 0.8 subset
// (file:line:col for every construct the default engine refuses). Exit 1 on any problem.
import { runNjsLint } from '../njs/bundle.ts';

export const help = `
Examples:
  $ gatewayctl njs-lint        # njs/**/*.ts, then the bundle esbuild produces from njs/gateway.ts

Flags classes, destructuring, spread, optional chaining, for-of, generators, Map/Set and
other constructs njs 0.8 lacks, and top-level code other than imports, functions, simple
constants and the export default (module top level runs for every request).`;

export async function run(): Promise<number> {
  return runNjsLint();
}
