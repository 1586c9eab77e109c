/**
 * The core path in browser mode: the project view, a new lm-pretrain run from the generated
 * form (defaults shown, errors inline), its curve growing live, cancel, resume to completion,
 * the compare view with only the differing config keys, and CSV / PNG exports.
 */
import { expect, test, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import { at, fixture, shot, state } from '../helpers';

test.describe.configure({ mode: 'serial' });

async function chartPoints(page: Page, title: string): Promise<number> {
  const v = await page.locator(`[data-testid=chart][data-title="${title}"]`).first().getAttribute('data-points');
  return Number(v ?? 0);
}

test('the project view lists runs with method, status, backend, key result and tags; filter and sort work', async ({ page }) => {
  const s = state();
  const lm = fixture('lm-pretrain');
  expect(lm?.status, lm?.error ?? '').toBe('completed');
  await page.goto(at(s.url, '/'));
  await expect(page.getByTestId('engine-state')).toContainText('engine');
  // The fixture runs were made by the CLI: the header names their backend, not a placeholder.
  await expect(page.getByTestId('engine-state')).toContainText(/wasm|webgpu|tensorflow|cpu/);
  const row = page.locator(`tr[data-run="${lm!.runId}"]`);
  await expect(row).toBeVisible();
  await expect(row).toContainText('lm-pretrain');
  await expect(row).toContainText('completed');
  await expect(row).toContainText('wasm');
  await expect(row).toContainText('val loss');
  // The key result carries its 95% interval, and hovering it says how the interval was computed.
  const key = row.getByTestId('key-result-cell');
  await expect(key).toContainText(/val loss\s+\d+\.\d+ \[\d+\.\d+, \d+\.\d+\]/);
  await expect(key.locator('[title^="95% interval: t over"]')).toBeVisible();
  await expect(row).toContainText('fixture');
  await shot(page, 'project-view');
  // Both themes: the toggle is a keyboard-reachable button; the choice persists.
  await page.getByRole('button', { name: 'Toggle light/dark theme' }).focus();
  await page.keyboard.press('Enter');
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await shot(page, 'project-view-dark');
  await page.getByRole('button', { name: 'Toggle light/dark theme' }).click();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'light');

  await page.getByLabel('Filter runs').fill('no-such-run-xyz');
  await expect(page.getByText('No run matches the filter.')).toBeVisible();
  await page.getByLabel('Filter runs').fill('e2e-tiny');
  await expect(row).toBeVisible();
  await page.getByLabel('Filter runs').fill('');
  await page.getByRole('button', { name: /^Method/ }).click();
  await expect(page.locator('th[aria-sort="ascending"]')).toContainText('Method');
});

let runId = '';

test('a new lm-pretrain run from the form: defaults shown, an invalid value is flagged inline, the run starts', async ({ page }) => {
  await page.goto(at(state().url, '/new'));
  await page.locator('a[data-kind="lm-pretrain"]').click();
  await expect(page.getByRole('heading', { name: 'Pretrain a language model' })).toBeVisible();
  // Defaults from the engine's schema are filled in.
  await expect(page.locator('#f-model-layers')).toHaveValue('4');
  await expect(page.locator('#f-train-steps')).toHaveValue('200');
  // warmup >= steps is refused by the engine's schema, and the error sits beside the field.
  await page.locator('#f-train-steps').fill('10');
  await page.locator('#f-train-warmup').fill('50');
  await expect(page.locator('[data-path="train.warmup"] .errline')).toContainText('warmup must be shorter than steps');
  await expect(page.getByRole('button', { name: 'Start run' })).toBeDisabled();
  await shot(page, 'new-run-form-error', false);

  const set = async (id: string, v: string) => page.locator(`#f-${id}`).fill(v);
  await set('name', 'e2e-form-run');
  await set('model-layers', '1');
  await set('model-d_model', '32');
  await set('model-heads', '2');
  await set('train-steps', '3000'); // several seconds even on the native kernels, so the cancel lands mid-run
  await set('train-warmup', '5');
  await set('train-batch', '4');
  await set('train-seq', '32');
  await set('train-eval_every', '1000');
  await set('train-eval_windows', '4');
  await set('train-log_every', '5');
  await set('train-checkpoint_every', '50');
  await page.locator('#f-train-layer_grad_norms').uncheck();
  await expect(page.locator('.errline')).toHaveCount(0);
  await expect(page.getByText('config valid')).toBeVisible();
  await shot(page, 'new-run-form');
  await page.getByRole('button', { name: 'Start run' }).click();
  await expect(page.getByTestId('run-view')).toBeVisible();
  runId = decodeURIComponent(new URL(page.url()).hash.split('/').pop()!);
  expect(runId).toMatch(/lm-pretrain/);
});

test('the run view shows the loss curve growing live, then cancel and resume to completion', async ({ page }) => {
  test.setTimeout(240_000);
  await page.goto(at(state().url, `/run/${runId}`));
  const status = page.getByTestId('run-status');
  await expect(status).toHaveText(/queued|running/);
  await expect.poll(() => chartPoints(page, 'loss'), { timeout: 60_000 }).toBeGreaterThan(3);
  const first = await chartPoints(page, 'loss');
  await expect.poll(() => chartPoints(page, 'loss'), { timeout: 30_000 }).toBeGreaterThan(first);
  await expect(page.getByTestId('eta')).toBeVisible();
  await shot(page, 'run-view-live');

  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(status).toHaveText('cancelled', { timeout: 30_000 });
  const stepAtCancel = Number(await page.getByTestId('run-step').textContent());
  expect(stepAtCancel).toBeLessThan(3000);

  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(status).toHaveText(/queued|running/);
  await expect(status).toHaveText('completed', { timeout: 150_000 });
  await expect(page.locator('.meta')).toContainText('resumed from step');
  await expect(page.getByTestId('key-result')).toContainText('val loss');

  // Smoothing, log scale and the time axis redraw the charts.
  await page.getByLabel('x axis').selectOption('time');
  await page.getByText('log y').click();
  await page.getByLabel('Smoothing').fill('0.6');
  await expect(page.locator('[data-testid=chart][data-title="loss"]')).toBeVisible();
  await page.getByLabel('x axis').selectOption('step');
  await shot(page, 'run-view');

  // PNG export of a plot, CSV export of the metrics.
  const [png] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export loss as PNG' }).click()]);
  expect(png.suggestedFilename()).toMatch(/\.png$/);
  const pngBytes = fs.readFileSync((await png.path())!);
  expect(pngBytes.subarray(1, 4).toString()).toBe('PNG');
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Metrics CSV' }).click()]);
  const text = fs.readFileSync((await csv.path())!, 'utf8');
  expect(text.split('\n')[0]).toContain('step');
  expect(text.split('\n').length).toBeGreaterThan(100);
});

test('the compare view overlays curves and lists only the config keys that differ; its tables export as CSV', async ({ page }) => {
  const lm = fixture('lm-pretrain')!;
  await page.goto(at(state().url, '/'));
  await page.getByLabel('Select e2e-tiny-llama for compare').check();
  await page.getByLabel('Select e2e-form-run for compare').check();
  await page.getByRole('button', { name: /Compare selected/ }).click();
  const view = page.getByTestId('compare-view');
  await expect(view).toBeVisible();
  await expect(page.locator('[data-testid=chart]')).toBeVisible();
  const diff = page.getByTestId('config-diff');
  await expect(diff).toContainText('train.steps');
  await expect(diff).toContainText('model.layers');
  await expect(diff).not.toContainText('data.source'); // identical in both runs
  // Each run's key result with its own interval; whether the two intervals let the difference be read, said plainly.
  const keys = page.getByTestId('compare-key-results');
  await expect(keys).toContainText(/val loss\s*\d+\.\d+ \[\d+\.\d+, \d+\.\d+\]/);
  await expect(keys).toContainText(/t over .*validation windows/);
  await expect(keys).toContainText('no test of the difference between two runs is made');
  const reading = page.getByTestId('compare-readings').locator('li');
  await expect(reading).toHaveCount(1);
  await expect(reading).toHaveAttribute('data-reading', /^(overlap|apart)$/);
  await expect(reading).toContainText(/their 95% intervals (overlap, so the difference between these runs cannot be read|do not overlap)/);
  expect(page.url()).toContain(lm.runId!);
  await shot(page, 'compare-view');
  const [dl] = await Promise.all([page.waitForEvent('download'), diff.getByRole('button', { name: /CSV/ }).click()]);
  const csv = fs.readFileSync((await dl.path())!, 'utf8');
  expect(csv.split('\n')[0]).toContain('key');
  expect(csv).toContain('train.steps');
});

test('every job kind has a new-run form that opens without page errors', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(at(state().url, '/new'));
  await expect(page.locator('a[data-kind="lm-pretrain"]')).toBeVisible();
  const kinds = await page.locator('a[data-kind]').evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')!));
  expect(kinds).toEqual(expect.arrayContaining(['lm-pretrain', 'lns-study', 'ln-removal', 'dla', 'lct-study', 'ptq-study', 'ptq-vit']));
  for (const kind of kinds) {
    await page.goto(at(state().url, '/new'));
    await page.locator(`a[data-kind="${kind}"]`).click();
    await expect(page.getByRole('button', { name: 'Start run' })).toBeVisible();
  }
  expect(errors).toEqual([]);
});
