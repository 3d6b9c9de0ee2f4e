import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real nginx processes; two cores on CI machines.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
