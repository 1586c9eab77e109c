/**
 * Electron mode, the same core path as browser mode: the window loads the renderer from the
 * app's own scheme, the engine runs in the utility process and reaches the renderer through the
 * MessagePort main hands over; a run starts, its curve grows, it is cancelled and resumed; the
 * page has no Node and no IPC; killing the engine process shows the restart notice and the run
 * reads interrupted. Skipped (with the reason) where the Electron binary is not installed.
 */
import { _electron as electron, expect, test, type ElectronApplication, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { ROOT, TMP, shot } from '../helpers';

const require = createRequire(import.meta.url);
function electronBinary(): string | null {
  try {
    const p = require('electron') as unknown;
    return typeof p === 'string' && fs.existsSync(p) ? p : null;
  } catch {
    return null;
  }
}
const binary = electronBinary();

test.describe('Electron mode', () => {
  test.skip(!binary, 'the Electron binary is not installed (ELECTRON_SKIP_BINARY_DOWNLOAD / offline install); browser mode covers the same path');
  test.describe.configure({ mode: 'serial' });

  let app: ElectronApplication;
  let page: Page;
  let project: string;

  test.beforeAll(async () => {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'electron/tsconfig.json'], { cwd: ROOT });
    fs.mkdirSync(TMP, { recursive: true });
    project = fs.mkdtempSync(path.join(TMP, 'e2e-electron-'));
    app = await electron.launch({ executablePath: binary!, args: [ROOT, '--project', project, '--no-sandbox'], cwd: ROOT });
    page = await app.firstWindow();
  });

  test.afterAll(async () => {
    await app?.close();
    fs.rmSync(project, { recursive: true, force: true });
  });

  test('the window is isolated: no Node, no require, no ipcRenderer in the page', async () => {
    await expect(page.getByTestId('engine-state')).toContainText('engine');
    const exposed = await page.evaluate(() => ({
      require: typeof (globalThis as { require?: unknown }).require,
      process: typeof (globalThis as { process?: unknown }).process,
      electron: typeof (globalThis as { electron?: unknown }).electron,
    }));
    expect(exposed).toEqual({ require: 'undefined', process: 'undefined', electron: 'undefined' });
    expect(page.url()).toMatch(/^normlab:\/\/app\//);
    await shot(page, 'electron-project-view');
  });

  test('start, watch, cancel and resume a run through the MessagePort; a killed engine restarts with a notice', async () => {
    await page.evaluate(() => (location.hash = '#/new/lm-pretrain'));
    const set = (id: string, v: string) => page.locator(`#f-${id}`).fill(v);
    await set('name', 'electron-run');
    await set('model-layers', '1');
    await set('model-d_model', '32');
    await set('model-heads', '2');
    await set('train-steps', '5000'); // long enough on the native kernels for the cancel and the kill to land mid-run
    await set('train-warmup', '5');
    await set('train-batch', '4');
    await set('train-seq', '32');
    await set('train-log_every', '5');
    await set('train-checkpoint_every', '10');
    await set('train-eval_every', '1000');
    await expect(page.getByText('config valid')).toBeVisible();
    await page.getByRole('button', { name: 'Start run' }).click();
    const status = page.getByTestId('run-status');
    await expect
      .poll(async () => Number(await page.locator('[data-testid=chart][data-title="loss"]').first().getAttribute('data-points')), { timeout: 60_000 })
      .toBeGreaterThan(3);
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect(status).toHaveText('cancelled');
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect(status).toHaveText('running');
    // Kill the utility process: main restarts it and the window shows the notice.
    const pid = await app.evaluate(
      async ({ app: a }) => a.getAppMetrics().find((m) => m.type === 'Utility' && m.serviceName === 'NormLab engine')?.pid ?? null,
    );
    expect(pid).not.toBeNull();
    process.kill(pid!, 'SIGKILL');
    await expect(page.getByTestId('notice')).toContainText('restarted');
    await expect(status).toHaveText('interrupted', { timeout: 30_000 });
    await shot(page, 'electron-engine-restarted');
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect(status).toHaveText(/running|completed/);
  });
});
