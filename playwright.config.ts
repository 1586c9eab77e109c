/**
 * End-to-end tests of the workbench. Browser mode always: `normlab serve` (started in the global
 * setup on a free port, over a temp project with finished fixture runs) in Debian's Chromium when
 * it is installed, else Playwright's own. Electron mode (`e2e/electron/`) with `_electron.launch`
 * when the Electron binary exists; skipped with the reason otherwise.
 */
import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));

export default defineConfig({
  testDir: 'e2e',
  globalSetup: './e2e/global-setup.ts',
  globalTeardown: './e2e/global-teardown.ts',
  timeout: 120_000,
  expect: { timeout: 15_000 },
  workers: 1,
  fullyParallel: false,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    browserName: 'chromium',
    viewport: { width: 1440, height: 900 },
    acceptDownloads: true,
    launchOptions: {
      ...(chromium ? { executablePath: chromium } : {}),
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    },
  },
  projects: [
    { name: 'browser', testMatch: /browser\/.*\.spec\.ts/ },
    { name: 'electron', testMatch: /electron\/.*\.spec\.ts/ },
  ],
});
