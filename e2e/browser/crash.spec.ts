/**
 * Killing the engine during a run (browser mode): the page shows the lost connection, the run
 * reads "interrupted" once a new `normlab serve` opens the project, and resume continues from its
 * last checkpoint to completion.
 */
import { expect, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { at, shot, startServe, TMP } from '../helpers';

test('a killed engine leaves the run interrupted; a new engine resumes it from its checkpoint', async ({ page }) => {
  test.setTimeout(180_000);
  fs.mkdirSync(TMP, { recursive: true });
  const project = fs.mkdtempSync(path.join(TMP, 'e2e-crash-'));
  const first = await startServe(project);
  let second: Awaited<ReturnType<typeof startServe>> | null = null;
  try {
    await page.goto(first.url);
    const config = {
      method: 'lm-pretrain',
      name: 'e2e-crash-run',
      model: { arch: 'llama', layers: 1, d_model: 32, heads: 2 },
      data: { source: 'moby-dick', tokenizer: 'byte', val_fraction: 0.05 },
      train: { steps: 3000, batch: 4, seq: 32, warmup: 5, eval_every: 1000, eval_windows: 4, log_every: 5, checkpoint_every: 10, layer_grad_norms: false },
    };
    // Start the run through the page's own connection (the same protocol the form uses).
    const runId = await page.evaluate(
      async ({ token, config }) => {
        const ws = new WebSocket(`ws://${location.host}/ws?token=${token}`);
        await new Promise((r) => (ws.onopen = r));
        return new Promise<string>((resolve) => {
          ws.onmessage = (e) => {
            const m = JSON.parse(e.data);
            if (m.kind === 'response' && m.id === 1) resolve(m.result.runId);
          };
          ws.send(JSON.stringify({ kind: 'request', id: 1, type: 'run.start', params: { config } }));
        });
      },
      { token: new URL(first.url).searchParams.get('token'), config },
    );
    await page.goto(at(first.url, `/run/${runId}`));
    // Wait until at least one checkpoint exists, then kill the engine hard.
    const latest = path.join(project, 'runs', runId, 'checkpoints', 'latest.json');
    await expect.poll(() => fs.existsSync(latest), { timeout: 60_000 }).toBe(true);
    await expect(page.getByTestId('run-status')).toHaveText('running');
    first.proc.kill('SIGKILL');
    await expect(page.getByTestId('notice')).toContainText('Lost the connection to the engine');
    await expect(page.getByTestId('engine-state')).toContainText('disconnected');
    await shot(page, 'engine-killed', false);

    second = await startServe(project);
    await page.goto(at(second.url, `/run/${runId}`));
    await expect(page.getByTestId('run-status')).toHaveText('interrupted');
    const checkpointStep = (JSON.parse(fs.readFileSync(latest, 'utf8')) as { step: number }).step;
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect(page.getByTestId('run-status')).toHaveText('completed', { timeout: 120_000 });
    await expect(page.locator('.meta')).toContainText(`resumed from step ${checkpointStep}`);
    await shot(page, 'run-resumed-after-crash');
  } finally {
    first.proc.kill('SIGKILL');
    second?.proc.kill('SIGTERM');
    fs.rmSync(project, { recursive: true, force: true });
  }
});
