/**
 * The workbench around the results: artifacts opened in place (JSON tree, Markdown, CSV,
 * folders), per-run progress (a queued run shows no other run's progress; elapsed time ticks
 * while running), the new-run form's errors on the fields that cause them (missing path, emptied
 * number, heads not dividing d_model), and "edit and rerun".
 */
import { expect, test } from '@playwright/test';
import { WebSocket } from 'ws';
import { at, fixture, shot, state } from '../helpers';

/** One protocol request over the serve WebSocket (what the renderer does). */
async function request<T>(type: string, params: Record<string, unknown>): Promise<T> {
  const s = state();
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/ws?token=${s.token}`);
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  try {
    return await new Promise<T>((resolve, reject) => {
      ws.on('message', (d) => {
        const m = JSON.parse(String(d)) as { kind: string; id: number; ok: boolean; result: T; error?: { message: string } };
        if (m.kind !== 'response' || m.id !== 1) return;
        if (m.ok) resolve(m.result);
        else reject(new Error(m.error?.message));
      });
      ws.send(JSON.stringify({ kind: 'request', id: 1, type, params }));
    });
  } finally {
    ws.close();
  }
}

test('artifacts open in place: JSON as a tree, Markdown rendered, CSV as a table, a folder listed', async ({ page }) => {
  const ptq = fixture('ptq-study')!;
  expect(ptq.status, ptq.error ?? '').toBe('completed');
  await page.goto(at(state().url, `/run/${ptq.runId}`));
  const list = page.getByTestId('artifacts');
  await expect(list).toBeVisible();
  const open = async (name: string) => {
    await list
      .locator(`[data-artifact-item="${name}"]`)
      .getByRole('button', { name: `▸ ${name}` })
      .click();
    return list.locator(`[data-testid=artifact-viewer][data-artifact="${name}"]`);
  };
  const json = await open('ptq_table.json');
  await expect(json.getByTestId('json-tree')).toContainText('table');
  await expect(json.getByTestId('json-tree')).toContainText('W4A4');
  const md = await open('ptq_table.md');
  await expect(md.getByTestId('markdown').locator('table th').first()).toHaveText('preset');
  await expect(md).not.toContainText('|---');
  const csv = await open('ptq_table.csv');
  await expect(csv.locator('table.data th').first()).toContainText('preset');
  await expect(csv.locator('table.data tbody tr')).toHaveCount(4);
  const folder = await open('quantized');
  await expect(folder.getByTestId('folder-list')).toContainText('model.safetensors');
  await list.scrollIntoViewIfNeeded();
  await shot(page, 'artifact-viewers', false);
});

test("a queued run shows no other run's progress; a running run's elapsed time ticks and stops when it is cancelled", async ({ page }) => {
  test.setTimeout(120_000);
  const config = (name: string) => ({
    method: 'lm-pretrain',
    name,
    model: { layers: 1, d_model: 16, heads: 2 },
    train: { steps: 5000, batch: 2, seq: 16, warmup: 1, eval_every: 5000, eval_windows: 2, checkpoint_every: 5000, log_every: 10, layer_grad_norms: false },
  });
  const a = await request<{ runId: string }>('run.start', { config: config('e2e-progress-a') });
  const b = await request<{ runId: string }>('run.start', { config: config('e2e-progress-b') });
  try {
    await page.goto(at(state().url, `/run/${a.runId}`));
    await expect(page.getByTestId('run-status')).toHaveText('running', { timeout: 30_000 });
    await expect.poll(async () => Number(await page.getByTestId('run-step').textContent()), { timeout: 30_000 }).toBeGreaterThan(0);
    const t0 = await page.getByTestId('elapsed').textContent();
    await expect.poll(() => page.getByTestId('elapsed').textContent(), { timeout: 10_000 }).not.toBe(t0);

    await page.goto(at(state().url, `/run/${b.runId}`));
    await expect(page.getByTestId('run-status')).toHaveText('queued');
    // Run A keeps reporting progress; none of it lands on B's page.
    await page.waitForTimeout(1500);
    await expect(page.getByTestId('run-step')).toContainText('queued');
    await expect(page.getByRole('progressbar')).toHaveAttribute('aria-valuenow', '0');
    await expect(page.locator('.stats')).not.toContainText('loss');
  } finally {
    await request('run.cancel', { runId: b.runId }).catch(() => undefined);
    await request('run.cancel', { runId: a.runId }).catch(() => undefined);
  }
  await page.goto(at(state().url, `/run/${a.runId}`));
  await expect(page.getByTestId('run-status')).toHaveText('cancelled', { timeout: 30_000 });
  // Cancelled: the elapsed time stops (it counts running time only).
  const stopped = await page.getByTestId('elapsed').textContent();
  await page.waitForTimeout(1500);
  await expect(page.getByTestId('elapsed')).toHaveText(stopped!);
});

test('the new-run form flags a missing data path, an emptied number and heads not dividing d_model on their own fields', async ({ page }) => {
  await page.goto(at(state().url, '/new/lm-pretrain'));
  await expect(page.getByRole('heading', { name: 'Pretrain a language model' })).toBeVisible();
  await page.locator('#f-data-source').selectOption('file');
  // A path outside the project and the granted folders is refused before it is even looked at.
  await page.locator('#f-data-path').fill('/no/such/corpus.txt');
  await expect(page.locator('[data-path="data.path"] .errline')).toContainText('outside the project');
  await page.locator('#f-data-path').fill(`${state().project}/no/such/corpus.txt`);
  await expect(page.locator('[data-path="data.path"] .errline')).toContainText('no such file or folder');
  await page.locator('#f-train-steps').fill('');
  await expect(page.locator('[data-path="train.steps"] .errline')).toContainText('enter a number');
  await page.locator('#f-model-d_model').fill('30');
  await page.locator('#f-model-heads').fill('4');
  await expect(page.locator('[data-path="model.heads"] .errline')).toContainText('heads 4 must divide d_model 30');
  await expect(page.locator('[data-path="model.d_model"] .errline')).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Start run' })).toBeDisabled();
  await shot(page, 'new-run-form-errors', false);
  // Fixing each field clears its error.
  await page.locator('#f-model-heads').fill('2');
  await page.locator('#f-train-steps').fill('200');
  await page.locator('#f-data-source').selectOption('moby-dick');
  await page.locator('#f-data-path').fill('');
  await expect(page.locator('.errline')).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Start run' })).toBeEnabled();
});

test('"edit and rerun" on a finished run opens the form prefilled with its config', async ({ page }) => {
  const lm = fixture('lm-pretrain')!;
  await page.goto(at(state().url, `/run/${lm.runId}`));
  await page.getByTestId('rerun').click();
  await expect(page.getByTestId('rerun-of')).toContainText(lm.runId!);
  await expect(page.locator('#f-name')).toHaveValue('e2e-tiny-llama');
  await expect(page.locator('#f-train-steps')).toHaveValue('30');
  await expect(page.locator('#f-model-d_model')).toHaveValue('32');
});

test("runs table: config keys and summary numbers as columns, grouping by parent, parallel coordinates of a study's runs", async ({ page }) => {
  const lns = fixture('lns-study')!;
  expect(lns.status, lns.error ?? '').toBe('completed');
  await page.goto(at(state().url, '/'));
  await page.evaluate(() => localStorage.removeItem('normlab-run-columns'));
  await page.getByTestId('column-picker').click();
  await page.getByLabel('Filter columns').fill('final_val_ppl');
  await page.locator('.opt', { hasText: 'final_val_ppl' }).locator('input').check();
  await page.getByTestId('column-picker').click();
  const lm = fixture('lm-pretrain')!;
  await expect(page.locator(`tr[data-run="${lm.runId}"] td[data-col="metric:final_val_ppl"]`)).toHaveText(/^\d+\.\d+$/);
  await page.getByLabel('Group runs by').selectOption('parent');
  const group = page.locator(`tr.group[data-group="${lns.runId}"]`);
  await expect(group).toContainText('e2e-lns-study');
  await expect(group).toContainText('3 runs');
  await page.getByLabel('Group runs by').selectOption('none');
  await page.evaluate(() => localStorage.removeItem('normlab-run-columns'));
  // The study's page puts its runs on parallel axes: the norm variant and their results.
  await page.goto(at(state().url, `/run/${lns.runId}`));
  const pc = page.getByTestId('parallel-coords');
  await expect(pc).toContainText('model.norm');
  await expect(pc.locator('polyline.run')).toHaveCount(2);
  await pc.locator('polyline.run').first().dispatchEvent('mouseenter');
  await expect(pc.getByTestId('readout')).toContainText('final_val_loss');
});

test('hover is shared by the figures with the same x axis, and smoothing does not add legend entries', async ({ page }) => {
  const lns = fixture('lns-study')!;
  await page.goto(at(state().url, `/run/${lns.runId}`));
  const train = page.locator('[data-testid=figure][data-title="Training loss per variant"]');
  const val = page.locator('[data-testid=figure][data-title="Validation loss per variant"]');
  await expect(val).toBeVisible();
  const over = train.locator('.u-over');
  const box = (await over.boundingBox())!;
  await over.hover({ position: { x: box.width * 0.9, y: box.height / 2 } });
  await expect(train.getByTestId('readout')).toContainText('step');
  await expect(val.getByTestId('readout')).toContainText('step'); // the cursor followed on the other panel
  // Zooming one (drag) zooms the other to the same steps; a double click resets both.
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  const range = async (fig: typeof train) => {
    const p = fig.getByTestId('chart');
    return [Number(await p.getAttribute('data-x-min')), Number(await p.getAttribute('data-x-max'))];
  };
  const zoomed = await range(train);
  expect(zoomed[1] - zoomed[0]).toBeLessThan(15);
  await expect.poll(() => range(val)).toEqual(zoomed);

  const lm = fixture('lm-pretrain')!;
  await page.goto(at(state().url, `/run/${lm.runId}`));
  const loss = page.locator('[data-testid=figure][data-title="loss"]');
  const entries = () => loss.locator('.u-legend .u-series').count();
  await expect(loss.locator('.u-legend .u-series').first()).toBeVisible();
  const before = await entries();
  expect(before).toBeGreaterThan(1);
  await page.getByLabel('Smoothing').fill('0.6');
  await expect(loss.locator('.u-legend')).toBeVisible();
  await page.waitForTimeout(300);
  expect(await entries()).toBe(before);
});
