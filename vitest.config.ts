/**
 * Vitest configuration for the unit tests of the engine and of the renderer's pure logic: node environment, one forked process per
 * test file (tfjs wasm needs process isolation), a generous timeout for model tests.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['engine/**/*.test.ts', 'renderer/src/lib/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    testTimeout: 60000,
  },
});
