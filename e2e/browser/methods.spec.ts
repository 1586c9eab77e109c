/**
 * Each method's results page (the finished fixture runs of e2e/fixtures/*.yaml): the comparison
 * table first, every figure drawn in the page from the run's data with a hover readout, no chart
 * over an index axis, figures dark in the dark theme, study pages overlaying their runs' curves.
 * Saves screenshots of each page at 1280×800 and 1920×1080 in both themes to e2e/screenshots/.
 * Browser-mode tests never skip: a missing or failed fixture fails the test with its error.
 */
import { expect, test, type Locator, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { at, fixture, shot, state } from '../helpers';

function needFixture(method: string): string {
  const f = fixture(method);
  expect(f, `no e2e fixture for ${method}`).toBeTruthy();
  expect(f!.status, `fixture ${f!.fixture} did not complete: ${f!.error}`).toBe('completed');
  return f!.runId!;
}

async function openRun(page: Page, runId: string): Promise<Locator> {
  await page.goto(at(state().url, `/run/${runId}`));
  await expect(page.getByTestId('run-status')).toHaveText('completed');
  const results = page.getByTestId('results');
  await expect(results).toBeVisible();
  await expect(page.getByTestId('key-result')).toBeVisible();
  return results;
}

/** Hover the data area of a figure and return its readout. */
async function hoverReadout(fig: Locator): Promise<string> {
  const kind = await fig.getAttribute('data-kind');
  if (kind === 'lines') {
    const over = fig.locator('.u-over');
    const box = (await over.boundingBox())!;
    // Sweep across the plot until the cursor lands on a data point (scatters are sparse).
    for (const fx of [0.5, 0.3, 0.7, 0.1, 0.9, 0.02, 0.98]) {
      await over.hover({ position: { x: box.width * fx, y: box.height / 2 } });
      const t = (await fig.getByTestId('readout').textContent())?.trim() ?? '';
      if (t) return t;
    }
    return '';
  }
  if (kind === 'heatmap') {
    const c = fig.locator('canvas');
    const box = (await c.boundingBox())!;
    await c.hover({ position: { x: 50, y: box.height - 42 } }); // ℓ = 0, n = 1: always a value
  } else if (kind === 'bars') {
    const bars = fig.locator('rect.bar');
    const tallest = await bars.evaluateAll((els) =>
      els.reduce((best, e, i, all) => (e.getBoundingClientRect().height > all[best].getBoundingClientRect().height ? i : best), 0),
    );
    await bars.nth(tallest).hover();
  } else await fig.locator('rect.bin').first().hover(); // the histogram's first bin: its margin fits its count labels
  return (await fig.getByTestId('readout').textContent())?.trim() ?? '';
}

/** Every figure on the page answers a hover with a readout naming a value. */
async function everyFigureHovers(page: Page): Promise<number> {
  const figs = page.getByTestId('results').getByTestId('figure');
  const n = await figs.count();
  for (let i = 0; i < n; i++) {
    const f = figs.nth(i);
    if (await f.getByTestId('chart-empty').count()) continue;
    await f.scrollIntoViewIfNeeded();
    const text = await hoverReadout(f);
    expect(text, `hover readout of "${await f.getAttribute('data-title')}"`).toMatch(/\d/);
  }
  return n;
}

/** No chart anywhere on the page plots over an index axis. */
async function noIndexAxis(page: Page): Promise<void> {
  const labels = await page.locator('[data-testid=chart]').evaluateAll((els) => els.map((e) => e.getAttribute('data-x-label')));
  expect(labels.filter((l) => l === 'index')).toEqual([]);
}

/** Relative luminance of a CSS rgb() colour. */
function luminance(rgb: string): number {
  const [r, g, b] = rgb.match(/[\d.]+/g)!.map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

/** In the dark theme the figures' backgrounds are dark and their text light. */
async function figuresAreDark(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Toggle light/dark theme' }).click();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  const figs = page.getByTestId('results').getByTestId('figure');
  const colours = await figs.evaluateAll((els) =>
    els.map((e) => ({ bg: getComputedStyle(e).backgroundColor, text: getComputedStyle(e.querySelector('figcaption') ?? e).color })),
  );
  expect(colours.length).toBeGreaterThan(0);
  for (const c of colours) {
    expect(luminance(c.bg)).toBeLessThan(0.2);
    expect(luminance(c.text)).toBeGreaterThan(0.6);
  }
  await page.getByRole('button', { name: 'Toggle light/dark theme' }).click();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'light');
}

/** The results page at 1280×800 and 1920×1080, light and dark, as e2e/screenshots/<name>-<w>-<theme>.png. */
async function screenshots(page: Page, name: string): Promise<void> {
  for (const [width, height] of [
    [1280, 800],
    [1920, 1080],
  ]) {
    await page.setViewportSize({ width, height });
    for (const theme of ['light', 'dark']) {
      if ((await page.locator('html').getAttribute('data-theme')) !== theme) await page.getByRole('button', { name: 'Toggle light/dark theme' }).click();
      await page.getByTestId('results').scrollIntoViewIfNeeded();
      await page.waitForTimeout(300); // charts resize to the new width
      await shot(page, `results-${name}-${width}-${theme}`, false);
    }
  }
  await page.getByRole('button', { name: 'Toggle light/dark theme' }).click();
  await page.setViewportSize({ width: 1440, height: 900 });
}

/** Every difference cell under `root` is tinted exactly when its verdict is outside noise, and says its verdict on hover. */
async function differencesColouredByVerdict(root: Locator): Promise<{ within: number; outside: number }> {
  const cells = await root
    .locator('td[data-verdict]')
    .evaluateAll((els) =>
      els.map((e) => ({ verdict: e.getAttribute('data-verdict'), bg: getComputedStyle(e).backgroundColor, title: e.getAttribute('title') ?? '' })),
    );
  expect(cells.length).toBeGreaterThan(0);
  const clear = (bg: string) => bg === 'rgba(0, 0, 0, 0)' || bg === 'transparent';
  for (const c of cells) {
    if (c.verdict === 'better' || c.verdict === 'worse') expect(clear(c.bg), `${c.title} should be tinted`).toBe(false);
    else expect(clear(c.bg), `${c.title} should not be tinted`).toBe(true);
    if (c.verdict === 'within noise') expect(c.title).toContain('within noise');
  }
  return {
    within: cells.filter((c) => c.verdict === 'within noise').length,
    outside: cells.filter((c) => c.verdict === 'better' || c.verdict === 'worse').length,
  };
}

test('Numbers to trust: the key result with its 95% interval, verdict and method, every summary warning, within-noise differences untinted', async ({
  page,
}) => {
  const summaries: Record<string, unknown>[] = [];
  let within = 0;
  for (const method of ['lns-study', 'ptq-study']) {
    const runId = needFixture(method);
    const summary = JSON.parse(fs.readFileSync(path.join(state().project, 'runs', runId, 'summary.json'), 'utf8')) as Record<string, unknown>;
    summaries.push(summary);
    const results = await openRun(page, runId);
    const kr = summary.key_result as { label: string; verdict?: string; interval?: string };
    const key = page.getByTestId('key-result');
    await expect(key).toContainText(kr.label);
    await expect(key).toContainText(/[+−]?\d+\.\d+( pp| %)? \[−?\d+\.\d+, −?\d+\.\d+\]/); // accuracies in percent or points
    if (kr.verdict) await expect(key).toContainText(`· ${kr.verdict}`);
    await expect(page.getByTestId('key-interval')).toContainText(kr.interval!);
    const warnings = (summary.warnings as string[] | undefined) ?? [];
    if (warnings.length) {
      const box = page.getByTestId('warnings');
      await expect(box).toBeVisible();
      await expect(box.locator('li')).toHaveCount(warnings.length);
      for (const w of warnings) await expect(box).toContainText(w);
    }
    // The difference cells (the variants table's paired difference, the PTQ grids) follow their verdicts.
    const root = method === 'lns-study' ? page.getByTestId('comparison-table') : results;
    within += (await differencesColouredByVerdict(root)).within;
  }
  // The fixtures are single-seed studies: they warn so, and at least one difference is within noise.
  expect(summaries.some((s) => ((s.warnings as string[] | undefined) ?? []).some((w) => /single seed/.test(w)))).toBe(true);
  expect(within).toBeGreaterThan(0);
});

test('A study over seeds: each seed’s value and mean ± sd in the table, the validation-loss curves’ mean over seeds with ± sd bands', async ({ page }) => {
  const f = state().fixtures.find((x) => x.fixture === 'seeds-lns-study.yaml');
  expect(f?.status, `fixture seeds-lns-study.yaml did not complete: ${f?.error}`).toBe('completed');
  const results = await openRun(page, f!.runId!);
  await expect(page.getByTestId('key-result')).toContainText('mean over 2 seeds');
  await expect(page.getByTestId('key-interval')).toContainText('t over 2 seeds');
  const table = page.getByTestId('comparison-table');
  for (const h of ['mean ± sd', '95% interval over seeds', 'seed 0', 'seed 1']) await expect(table.locator('th')).toContainText([h]);
  await expect(
    table
      .locator('td')
      .filter({ hasText: /^\d+\.\d+ ± \d+\.\d+$/ })
      .first(),
  ).toBeVisible();
  const chart = results.locator('[data-testid=chart][data-title^="Validation loss: mean over seeds"]');
  await expect(chart).toHaveAttribute('data-bands', '2');
  await expect(results.locator('[data-testid=figure][data-title^="Validation loss: mean over seeds"] .u-legend')).toContainText('(2 seeds)');
  await screenshots(page, 'lns-study-seeds');
});

test('LNS study: variants table first, train and val loss overlaid per variant, diagnostics drawn with hover readouts', async ({ page }) => {
  const results = await openRun(page, needFixture('lns-study'));
  await expect(results).toHaveAttribute('data-family', 'lns');
  const table = page.getByTestId('comparison-table');
  await expect(table).toContainText('pre');
  await expect(table).toContainText('lns');
  // The table comes before the figures, and its last column is fully inside the page.
  const tableBox = (await table.boundingBox())!;
  expect(tableBox.y).toBeLessThan((await page.getByTestId('figures').boundingBox())!.y);
  const lastHeader = (await table.locator('th').last().boundingBox())!;
  expect(lastHeader.x + lastHeader.width).toBeLessThanOrEqual(tableBox.x + tableBox.width + 1);
  for (const title of ['Training loss per variant', 'Validation loss per variant']) {
    const chart = results.locator(`[data-testid=chart][data-title="${title}"]`);
    await expect(chart).toBeVisible();
    expect(Number(await chart.getAttribute('data-points'))).toBeGreaterThan(4);
    await expect(results.locator(`[data-testid=figure][data-title="${title}"] .u-legend`)).toContainText('lns');
  }
  for (const title of [
    'Residual-stream variance by layer',
    'Angular distance, pre',
    'Angular distance, lns',
    'Performance drop when one layer is removed',
    'Gradient norm per block',
  ])
    await expect(results.locator(`[data-testid=figure][data-title="${title}"]`)).toBeVisible();
  expect(await everyFigureHovers(page)).toBeGreaterThanOrEqual(7);
  // The heatmap's readout names the cell.
  const heat = results.locator('[data-testid=figure][data-kind=heatmap]').first();
  expect(await hoverReadout(heat)).toMatch(/ℓ = 0, n = 1: angular distance 0\.\d+/);
  await noIndexAxis(page);
  await figuresAreDark(page);
  await screenshots(page, 'lns-study');
});

test('Depth study: deep vs shallow table first, ΔP with interval bands on relative depth, one colour per model in every figure, heatmaps on one scale, Prune… form', async ({
  page,
}) => {
  const results = await openRun(page, needFixture('depth-study'));
  await expect(results).toHaveAttribute('data-family', 'depth');
  const table = page.getByTestId('comparison-table');
  for (const m of ['llama', 'gemma2', 'gpt2']) await expect(table).toContainText(m);
  const titles = ['Cross-entropy increase when one block is removed', 'Block Influence by relative depth', 'Residual-stream variance by relative depth'];
  const colours: string[][] = [];
  for (const title of titles) {
    const fig = results.locator(`[data-testid=figure][data-title="${title}"]`);
    await expect(fig).toBeVisible();
    await expect(fig.locator('[data-testid=chart]')).toHaveAttribute('data-x-label', /relative depth/);
    colours.push(await fig.locator('.u-legend .u-series .u-marker').evaluateAll((els) => els.slice(1).map((e) => getComputedStyle(e).borderColor)));
  }
  // One colour per model, the same in every figure.
  expect(new Set(colours[0]).size).toBe(3);
  for (const c of colours) expect(c).toEqual(colours[0]);
  await expect(results.locator('[data-testid=figure][data-kind=heatmap]')).toHaveCount(3);
  expect(await everyFigureHovers(page)).toBeGreaterThanOrEqual(6);
  await page.getByRole('button', { name: 'Prune…' }).click();
  await expect(page.getByTestId('prune-form')).toBeVisible();
  await screenshots(page, 'depth-study');
  await page.getByRole('button', { name: 'Prune…' }).click();
  await noIndexAxis(page);
  await figuresAreDark(page);
});

test('LM pretraining: the depth diagnostics of one run drawn from diagnostics.json, the live curves below', async ({ page }) => {
  const results = await openRun(page, needFixture('lm-pretrain'));
  await expect(results.locator('[data-testid=figure][data-title="Residual-stream variance by layer"]')).toBeVisible();
  await expect(results.locator('[data-testid=figure][data-title="Residual-stream variance by layer"]')).not.toContainText('LNS');
  expect(await everyFigureHovers(page)).toBeGreaterThanOrEqual(4);
  await expect(page.getByTestId('run-step')).toHaveText('30');
  await noIndexAxis(page);
  await screenshots(page, 'lm-pretrain');
});

test('LN removal: CE table, fine-tuning curves with removal markers on the LN-removal run only, σ bars and DLA scatters', async ({ page }) => {
  const results = await openRun(page, needFixture('ln-removal'));
  await expect(results).toHaveAttribute('data-family', 'ln-removal');
  const ce = page.getByTestId('comparison-table');
  await expect(ce).toContainText('LN-free'); // not mangled to "ln free"
  await expect(ce).toContainText('vanilla');
  await expect(results.locator('[data-testid=figure][data-title="Fine-tuning CE (train)"]')).toContainText(/dashed lines: \d+ events/);
  await expect(results.locator('[data-testid=figure][data-title="DLA vs direct effect, LN-free"]')).toBeVisible();
  // A base pretrained to a plateau: the convergence guard stays quiet, so the gap reads as the cost of removing LayerNorm.
  await expect(page.getByTestId('warnings')).not.toContainText(/not converged|miscalibrated|still improving/);
  // Each model's DLA NMAE with its bootstrap interval over prompts, in a grid nothing tints.
  const nmae = results.getByTestId('grid').filter({ hasText: 'DLA vs direct effect: NMAE' });
  await expect(nmae).toContainText('percentile bootstrap over 8 prompts');
  for (const model of ['original', 'vanilla fine-tune', 'LN-free']) await expect(nmae.locator('tr', { hasText: model }).locator('td')).toContainText(/\d\s*\[/);
  expect(await everyFigureHovers(page)).toBeGreaterThanOrEqual(4);
  await noIndexAxis(page);
  await figuresAreDark(page);
  await screenshots(page, 'ln-removal');
  // The runs list shows the gap with its interval and verdict, tinted only outside noise, and the warning count.
  await page.goto(at(state().url, '/'));
  const row = page.locator(`tr[data-run="${needFixture('ln-removal')}"]`);
  await expect(row.getByTestId('key-result-cell')).toContainText(/LN-free − vanilla CE\s+[+−]\d+\.\d+ \[[−\d.]+, [−\d.]+\]\s+(better|worse|within noise)/);
  await expect(row.getByTestId('warning-count')).toContainText(/\d+ warnings?/);
  const verdicts = await page
    .getByTestId('runs-table')
    .locator('.verdict[data-verdict]')
    .evaluateAll((els) => els.map((e) => ({ verdict: e.getAttribute('data-verdict'), tinted: e.classList.contains('good') || e.classList.contains('bad') })));
  expect(verdicts.length).toBeGreaterThan(0);
  for (const v of verdicts) expect(v.tinted, `${v.verdict}`).toBe(v.verdict !== 'within noise');
  // The two arms are child runs: the vanilla control's live curves carry no removal markers,
  // the LN-removal arm's do.
  const arms = armRuns(needFixture('ln-removal'));
  await openArm(page, arms.vanilla);
  const vanilla = page.locator('[data-testid=figure][data-title="vanilla_grad_norm"]');
  await expect(vanilla).toBeVisible();
  await expect(vanilla).not.toContainText('dashed lines');
  // An all-zero series says so instead of drawing a flat line.
  await expect(page.locator('[data-testid=figure][data-title="vanilla_aux"]').getByTestId('chart-empty')).toContainText('is 0');
  await openArm(page, arms.remove);
  await expect(page.locator('[data-testid=figure][data-title="ln_free_grad_norm"]')).toContainText('dashed lines');
});

async function openArm(page: Page, runId: string): Promise<void> {
  await page.goto(at(state().url, `/run/${runId}`));
  await expect(page.getByTestId('run-status')).toHaveText('completed');
}

/** The arm runs an ln-removal study records in its summary (`arms.vanilla`, `arms.remove`). */
function armRuns(runId: string): { vanilla: string; remove: string } {
  const summary = JSON.parse(fs.readFileSync(path.join(state().project, 'runs', runId, 'summary.json'), 'utf8')) as {
    arms: { vanilla: string; remove: string };
  };
  return summary.arms;
}

test("LCT study: the configurations table first, FID bars per configuration, the runs' losses overlaid; no FID line through configurations", async ({
  page,
}) => {
  const results = await openRun(page, needFixture('lct-study'));
  await expect(results).toHaveAttribute('data-family', 'lct');
  const table = page.getByTestId('comparison-table');
  await expect(table).toContainText('FID 1 step');
  await expect(table).toContainText('full recipe');
  const tableBox = (await table.boundingBox())!;
  const lastHeader = (await table.locator('th').last().boundingBox())!;
  expect(lastHeader.x + lastHeader.width).toBeLessThanOrEqual(tableBox.x + tableBox.width + 1);
  await expect(results.locator('[data-testid=figure][data-kind=bars]').first()).toContainText('full recipe');
  await expect(results.locator('[data-testid=chart][data-title="Training loss per configuration"]')).toBeVisible();
  expect(await everyFigureHovers(page)).toBeGreaterThanOrEqual(2);
  // The study's own metric lines are per-configuration results: a table, never a curve.
  await expect(page.locator('[data-testid=chart][data-title^="fid"]')).toHaveCount(0);
  await expect(page.getByText('Results as logged')).toBeVisible();
  await expect(page.getByTestId('run-step')).toContainText('4 / 4');
  await noIndexAxis(page);
  await screenshots(page, 'lct-study');
  // The full-recipe run: FID and class histogram as bars, its sample grids; nothing plots class names or the latent shape.
  await page.getByTestId('comparison-table').getByRole('link').last().click();
  await expect(page.getByTestId('run-view')).toBeVisible();
  await expect(page.getByTestId('results').locator('[data-testid=figure][data-title="Class histogram of the samples"]')).toBeVisible();
  await expect(page.locator('img[data-artifact="samples-1step.png"]')).toBeVisible();
  await expect(page.locator('[data-testid=chart][data-title*="class"], [data-testid=chart][data-title*="latent"]')).toHaveCount(0);
  expect(await everyFigureHovers(page)).toBeGreaterThanOrEqual(2);
  await screenshots(page, 'lct');
});

test('PTQ study: preset × bit width as a colour-scaled grid, the top-1 drop as bars, the softmax histogram with quantizer levels', async ({ page }) => {
  const results = await openRun(page, needFixture('ptq-study'));
  await expect(results).toHaveAttribute('data-family', 'ptq');
  const grid = results.getByTestId('grid').first();
  await expect(grid).toContainText('W4A4');
  await expect(grid).toContainText('dopq');
  // Each top-1 has its Wilson interval; a cell is tinted exactly when its paired difference from full precision is outside noise.
  await expect(grid.locator('td .ci').first()).toHaveText(/^\[\d+\.\d+, \d+\.\d+\]$/);
  await differencesColouredByVerdict(grid);
  const cmp = results.getByTestId('grid').filter({ hasText: 'DopQ − RepQ' });
  await expect(cmp.locator('td').first()).toHaveText(/^[+−]?\d+\.\d+\s*\[−?\d+\.\d+, −?\d+\.\d+\]$/);
  await differencesColouredByVerdict(cmp);
  // No raw markdown table anywhere in the summary.
  await expect(results).not.toContainText('|---|');
  const hist = results.locator('[data-testid=figure][data-kind=histogram]');
  await expect(hist).toContainText("TanQ (NormLab's reconstruction)");
  expect(await hoverReadout(hist)).toMatch(/values · nearest level: uniform → /);
  expect(await everyFigureHovers(page)).toBeGreaterThanOrEqual(3);
  // Its per-preset metric lines are results, not a curve over "step".
  await expect(page.locator('[data-testid=chart][data-title="top1"], [data-testid=chart][data-title="bits"]')).toHaveCount(0);
  await noIndexAxis(page);
  await figuresAreDark(page);
  await screenshots(page, 'ptq-study');
});
