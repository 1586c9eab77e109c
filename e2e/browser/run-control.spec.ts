/**
 * Run control in the workbench: Cancel stops a run at a step boundary with a checkpoint, Resume
 * continues from that step (not from step 0), and the run ends with the final loss of the same
 * config run uninterrupted. A form with a bad list entry shows the message on that field.
 */
import { expect, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { at, state } from '../helpers';

test.describe.configure({ mode: 'serial' });

/** Enough steps that the cancel lands mid-run on a fast machine too; no periodic checkpoint before the last step. */
const config = {
  method: 'lm-pretrain',
  name: 'e2e-cancel-resume',
  seed: 11,
  model: { arch: 'llama', layers: 1, d_model: 32, heads: 2 },
  train: { steps: 4000, batch: 4, seq: 16, warmup: 5, eval_every: 5000, eval_windows: 2, checkpoint_every: 100000, log_every: 5, layer_grad_norms: false },
};

/** One engine protocol request (as the workbench sends it); resolves its result. */
async function request(type: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
  const s = state();
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/ws?token=${s.token}`);
  await new Promise((r) => ws.once('open', r));
  const result = await new Promise<Record<string, unknown>>((resolve, reject) => {
    ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as { kind: string; id?: number; ok?: boolean; result?: Record<string, unknown>; error?: { message: string } };
      if (m.kind !== 'response' || m.id !== 1) return;
      if (m.ok) resolve(m.result!);
      else reject(new Error(m.error!.message));
    });
    ws.send(JSON.stringify({ kind: 'request', id: 1, type, params }));
  });
  ws.close();
  return result;
}

/** Start a run of `config` (as the new-run form does); resolves its id. */
const start = async (c: Record<string, unknown> = config) => (await request('run.start', { config: c })).runId as string;

const runDir = (runId: string) => path.join(state().project, 'runs', runId);
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

test('Cancel checkpoints the step it reached; Resume continues there and ends with the loss of an uninterrupted run', async ({ page }) => {
  test.setTimeout(300_000);
  const straight = await start();
  await expect.poll(() => (fs.existsSync(path.join(runDir(straight), 'summary.json')) ? 'done' : 'running'), { timeout: 150_000 }).toBe('done');
  const expected = readJson(path.join(runDir(straight), 'summary.json')).final_val_loss;
  expect(typeof expected).toBe('number');

  const runId = await start();
  await page.goto(at(state().url, `/run/${runId}`));
  const status = page.getByTestId('run-status');
  await expect.poll(async () => Number(await page.getByTestId('run-step').textContent()), { timeout: 60_000 }).toBeGreaterThan(20);
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(status).toHaveText('cancelled', { timeout: 30_000 });
  const latest = readJson(path.join(runDir(runId), 'checkpoints', 'latest.json'));
  expect(latest.step).toBeGreaterThan(20);
  expect(latest.step).toBeLessThan(4000);

  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(status).toHaveText('completed', { timeout: 150_000 });
  await expect(page.locator('.meta')).toContainText(`resumed from step ${latest.step}`);
  expect(readJson(path.join(runDir(runId), 'summary.json')).final_val_loss).toBe(expected);

  // Compare both: several metrics at once, one chart each.
  await page.goto(at(state().url, `/compare/${straight},${runId}`));
  await page.getByLabel('Metrics to compare').selectOption(['loss', 'val_loss']);
  await expect(page.locator('[data-testid=chart]')).toHaveCount(2);
  await expect(page.locator('[data-testid=chart][data-title="loss"]')).toBeVisible();
  await expect(page.locator('[data-testid=chart][data-title="val_loss"]')).toBeVisible();
});

test('Compare of runs without any curve says so instead of drawing empty axes', async ({ page }) => {
  const long = await start({ ...config, name: 'e2e-long', train: { ...config.train, steps: 100000 } });
  const waiting = await start({ ...config, name: 'e2e-never-started' }); // queued behind the long one
  await request('run.cancel', { runId: waiting });
  await request('run.cancel', { runId: long });
  await page.goto(at(state().url, `/compare/${waiting}`));
  await expect(page.getByTestId('compare-empty')).toContainText('None of these runs has logged a curve yet');
  await expect(page.locator('[data-testid=chart]')).toHaveCount(0);
});

test('a bad entry of a list field shows its message on that field', async ({ page }) => {
  await page.goto(at(state().url, '/new'));
  await page.locator('a[data-kind="ptq-study"]').click();
  await page.locator('#f-bits').fill('4, 99');
  const field = page.locator('[data-path="bits"] .errline');
  await expect(field).toContainText('entry 2: bit widths must be at most 16');
  await expect(page.getByText('1 field to fix')).toBeVisible();
});
