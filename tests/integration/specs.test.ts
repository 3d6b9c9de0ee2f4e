// Runs every data spec under tests/integration/specs/<name>/ (see lib/spec.ts for the format)
// through the compiler and real nginx on loopback, with real Node upstreams.

import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { stopAllGateways } from '../support/nginx.ts';
import { loadSpec, runStep, startSpec, type SpecContext } from './lib/spec.ts';

const SPECS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'specs');
const only = process.env.GATEWAYCTL_SPEC; // run a single spec: GATEWAYCTL_SPEC=cache
const dirs = readdirSync(SPECS)
  .filter((d) => existsSync(path.join(SPECS, d, 'spec.json')) && (!only || d === only))
  .sort();

afterAll(async () => {
  await stopAllGateways();
});

for (const name of dirs) {
  const dir = path.join(SPECS, name);
  const spec = loadSpec(dir);
  describe(`spec ${name}: ${spec.description}`, () => {
    let ctx: SpecContext | null = null;
    beforeAll(async () => {
      ctx = await startSpec(dir);
    });
    afterAll(async () => {
      await ctx?.close();
    });
    for (const step of spec.steps) {
      it(step.name, async () => {
        if (!ctx) throw new Error('gateway did not start');
        await runStep(ctx, step);
      });
    }
  });
}
