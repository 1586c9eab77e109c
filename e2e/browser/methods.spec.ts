/**
 * One test per method: open the finished fixture run (made by the global setup from
 * e2e/fixtures/*.yaml) and check that its results render — plots loaded, tables filled — and
 * save a screenshot of the results view. Browser-mode tests never skip: a missing or failed
 * fixture fails the test with the fixture's error.
 */
import { expect, test, type Page } from '@playwright/test';
import { at, fixture, shot, state } from '../helpers';

function needFixture(method: string): string {
  const f = fixture(method);
  expect(f, `no e2e fixture for ${method}`).toBeTruthy();
  expect(f!.status, `fixture ${f!.fixture} did not complete: ${f!.error}`).toBe('completed');
  return f!.runId!;
}

async function openRun(page: Page, runId: string): Promise<void> {
  await page.goto(at(state().url, `/run/${runId}`));
  await expect(page.getByTestId('run-status')).toHaveText('completed');
  await expect(page.getByTestId('results')).toBeVisible();
  await expect(page.getByTestId('key-result')).toBeVisible();
}

/** Every artifact image on the page has loaded (decoded, non-empty). */
async function imagesLoaded(page: Page, atLeast: number): Promise<void> {
  const imgs = page.locator('img[data-artifact]');
  await expect.poll(() => imgs.count()).toBeGreaterThanOrEqual(atLeast);
  await expect.poll(() => imgs.evaluateAll((els) => els.every((e) => (e as HTMLImageElement).complete && (e as HTMLImageElement).naturalWidth > 0))).toBe(true);
}

test('LNS: variance curve, angular-distance heatmap and pruning drop render with the perplexity table', async ({ page }) => {
  const runId = needFixture('lns-study');
  await openRun(page, runId);
  const results = page.getByTestId('results');
  await expect(results).toHaveAttribute('data-family', 'lns');
  for (const title of ['Residual-stream variance by layer', 'Angular distance between layers l and l+n', 'Performance drop when one layer is removed'])
    await expect(results.getByRole('heading', { name: title }).first()).toBeVisible();
  await imagesLoaded(page, 3);
  await expect(results.locator('table.data').first()).toBeVisible();
  await expect(results).toContainText(/ppl/i);
  await shot(page, 'results-lns');
});

test('LN removal: fine-tuning curves with removal steps marked and the CE table render', async ({ page }) => {
  const runId = needFixture('ln-removal');
  await openRun(page, runId);
  const results = page.getByTestId('results');
  await expect(results).toHaveAttribute('data-family', 'ln-removal');
  await expect(results.getByRole('heading', { name: /Fine-tuning curves/ })).toBeVisible();
  await imagesLoaded(page, 1);
  const ce = results.locator('.table-block', { has: page.getByRole('heading', { name: /ce table/i }) }).first();
  await expect(ce).toContainText('LN-free');
  await expect(ce).toContainText('vanilla');
  // Removal steps appear as dashed markers on the live curves.
  await expect(page.getByText(/dashed lines: \d+ events/).first()).toBeVisible();
  await shot(page, 'results-ln-removal');
});

test('LCT: the FID table of the study and the sample grids of its runs render', async ({ page }) => {
  const runId = needFixture('lct-study');
  await openRun(page, runId);
  const results = page.getByTestId('results');
  await expect(results).toHaveAttribute('data-family', 'lct');
  await expect(results).toContainText(/fid 1step/i);
  await expect(results).toContainText('full recipe');
  await imagesLoaded(page, 1);
  await shot(page, 'results-lct-study');
  // The full-recipe child run holds the 1- and 2-step sample grids.
  await page
    .locator('section.panel', { hasText: 'Child runs' })
    .getByRole('link')
    .filter({ hasText: /full|lct/ })
    .last()
    .click();
  await expect(page.getByTestId('run-view')).toBeVisible();
  await expect(page.getByRole('heading', { name: /Samples/ }).first()).toBeVisible();
  await imagesLoaded(page, 2);
  await shot(page, 'results-lct-samples');
});

test('PTQ: the accuracy table by method and bit width and the quantizer histograms render', async ({ page }) => {
  const runId = needFixture('ptq-study');
  await openRun(page, runId);
  const results = page.getByTestId('results');
  await expect(results).toHaveAttribute('data-family', 'ptq');
  await expect(results.getByRole('heading', { name: /Top-1 accuracy/ })).toBeVisible();
  await expect(results.getByRole('heading', { name: /Quantizer histograms/ }).first()).toBeVisible();
  await imagesLoaded(page, 2);
  await expect(results).toContainText('W4A4');
  await expect(results).toContainText('dopq');
  await shot(page, 'results-ptq');
});
