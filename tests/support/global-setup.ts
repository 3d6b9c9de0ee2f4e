// vitest globalSetup: once per test run, rebuild the bundled CLI (lib/gatewayctl.mjs) from
// src/, so every test that spawns bin/gatewayctl.js runs the current sources (the launcher
// would otherwise fall back to tsx, slowly, after a source edit; see bin/gatewayctl.js).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  execFileSync(process.execPath, [fileURLToPath(new URL('../../scripts/build-cli.mjs', import.meta.url))], { stdio: 'inherit' });
}
