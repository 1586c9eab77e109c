/**
 * Recipe presets in the new-run form: choosing one fills the paper's values into the fields, the
 * engine resolves the config with the preset recorded, and a field stays editable over it.
 */
import { expect, test } from '@playwright/test';
import { at, state } from '../helpers';

test('the lm-pretrain form offers the LNS paper presets and fills in their values', async ({ page }) => {
  await page.goto(at(state().url, '/new'));
  await page.locator('a[data-kind="lm-pretrain"]').click();
  const select = page.getByTestId('preset-select');
  await expect(select.locator('option')).toHaveText(['none', 'lns-paper-130m', 'lns-paper-250m', 'lns-paper-350m', 'lns-paper-1b']);
  await select.selectOption('lns-paper-350m');
  await expect(page.locator('#f-model-layers')).toHaveValue('24');
  await expect(page.locator('#f-model-d_model')).toHaveValue('1024');
  await expect(page.locator('#f-train-lr')).toHaveValue('0.0005');
  await expect(page.locator('#f-train-beta2')).toHaveValue('0.999');
  await expect(page.locator('#f-train-tokens_per_step')).toHaveValue('131072');
  // Override one field over the preset; the resolved config keeps the preset's name and the override.
  await page.locator('#f-train-steps').fill('500');
  await page.locator('#f-train-warmup').fill('50');
  await expect(page.getByText('config valid')).toBeVisible();
  await page.getByText('Resolved config (JSON)').click();
  await expect(page.locator('.resolved pre')).toContainText('"steps": 500'); // validated after the edit
  const resolved = JSON.parse((await page.locator('.resolved pre').textContent()) ?? '{}') as { preset: string; train: { steps: number; clip: number } };
  expect(resolved.preset).toBe('lns-paper-350m');
  expect(resolved.train).toMatchObject({ steps: 500, clip: 0 });
});
