/**
 * Vitest configuration for the engine's unit tests: node environment, one forked process per
 * test file (tfjs wasm needs process isolation), a generous timeout for model tests.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['engine/**/*.test.ts', 'electron/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    testTimeout: 60000,
  },
});
