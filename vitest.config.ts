import path from 'node:path';
import { defineConfig } from 'vitest/config';

// Two runtimes: every test on the oldest supported target (.runtime/: nginx 1.26 + njs 0.8.9),
// and the suites that run gateway builds through real nginx again on the newest
// (.runtime-next/: Debian unstable's nginx 1.30 + njs 1.0), so every bundle is proven on both.
const NEXT_NGINX = path.resolve('.runtime-next/bin/nginx');
// Suites that run containers on the host network (a private dockerd each): their gateways bind
// host ports picked in another test process, and one of them runs its own ACME server, so they
// run after everything else rather than next to the TLS and gateway suites.
const CONTAINERS = ['tests/deploy/compose-run.test.ts', 'tests/k8s/container.test.ts'];
const ON_BOTH = ['tests/golden.test.ts', 'tests/metrics/**/*.test.ts', 'tests/state/**/*.test.ts', 'tests/auth/**/*.test.ts', 'tests/njs/**/*.test.ts', 'tests/routing/**/*.test.ts', 'tests/integration/**/*.test.ts'];

export default defineConfig({
  test: {
    // Tests spawn bin/gatewayctl.js, which runs the bundle built from src/: rebuilt once per run.
    globalSetup: ['tests/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real nginx processes; two cores on CI machines.
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'nginx-1.26', include: ['tests/**/*.test.ts'], exclude: CONTAINERS } },
      { extends: true, test: { name: 'nginx-next', include: ON_BOTH, env: { GATEWAYCTL_NGINX: NEXT_NGINX } } },
      { extends: true, test: { name: 'containers', include: CONTAINERS, sequence: { groupOrder: 1 } } },
    ],
  },
});
