import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Tests spawn bin/gatewayctl.js, which runs the bundle built from src/: rebuilt once per run.
    globalSetup: ['tests/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real nginx processes; two cores on CI machines.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
