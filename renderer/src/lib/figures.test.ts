import { describe, expect, it } from 'vitest';
import { diagnosticsFigures, gridTint, heatColor, neededFiles, removalMarkers, resultsPage, type Figure, type RunData } from './figures';
import * as figuresModule from './figures';

const diag = (variance: number[], drop: number[]) => ({
  layers: drop.length,
  variance,
  angular: {
    n: [1, 2],
    l: [0, 1],
    d: [
      [0.2, 0.1],
      [0.3, null],
    ],
  },
  pruning: { drop_loss: drop },
  grad_norms: { per_layer: drop.map((d) => 2 * d), source: 'training' },
});

const run = (method: string, summary: Record<string, unknown>, extra: Partial<RunData> = {}): RunData => ({
  id: 'r1',
  method,
  name: method,
  summary,
  metrics: [],
  files: {},
  ...extra,
});

const byId = (figs: Figure[], id: string) => figs.find((f) => f.id === id)!;

describe('method figures from the engine data', () => {
  it('depth diagnostics: variance over layers 0..L (log y), one heatmap per model with a shared colour domain, pruning bars per block', () => {
    const figs = diagnosticsFigures([
      { label: 'pre', d: diag([1, 2, 4], [0.5, 0.25]) },
      { label: 'lns', d: diag([1, 1.5, 2], [0.1, 0.2]) },
    ]);
    const v = byId(figs, 'variance');
    expect(v.kind === 'lines' && v.logY && v.xLabel.startsWith('layer')).toBe(true);
    if (v.kind === 'lines')
      expect(v.series.map((s) => s.x)).toEqual([
        [0, 1, 2],
        [0, 1, 2],
      ]);
    expect(v.note).toMatch(/LNS/);
    const heat = figs.filter((f) => f.kind === 'heatmap');
    expect(heat.map((h) => h.id)).toEqual(['angular-pre', 'angular-lns']);
    if (heat[0].kind === 'heatmap') expect(heat[0].domain).toEqual([0, 0.3]);
    const bars = byId(figs, 'pruning');
    expect(bars.kind === 'bars' && bars.categories).toEqual(['block 1', 'block 2']);
    if (bars.kind === 'bars')
      expect(bars.groups.map((g) => g.values)).toEqual([
        [0.5, 0.25],
        [0.1, 0.2],
      ]);
    const g = byId(figs, 'grad-norms');
    if (g.kind === 'lines') expect(g.series[0].x).toEqual([1, 2]);
  });

  it('a Pre-LN-only run does not get the "LNS keeps it bounded" caption', () => {
    const [v] = diagnosticsFigures([{ label: 'e2e-tiny', d: diag([1, 2], [0.1]) }]);
    expect(v.note).not.toMatch(/LNS/);
  });

  it('lns-study: the variants table first (no list columns), train and val loss of every child overlaid by variant name', () => {
    const variants = [
      { variant: 'pre', norm_type: 'rmsnorm', final_val_loss: 4.1, final_val_ppl: 60, run_id: 'c1', layer_variance: [1, 2] },
      { variant: 'lns', norm_type: 'rmsnorm', final_val_loss: 4.0, final_val_ppl: 55, run_id: 'c2', layer_variance: [1, 1] },
    ];
    const child = (id: string, off: number): RunData =>
      run(
        'lm-pretrain',
        {},
        { id, name: 'study child', metrics: [1, 2, 3].map((s) => ({ step: s, loss: 5 - s + off })).concat([{ step: 3, val_loss: 3 + off } as never]) },
      );
    const page = resultsPage(run('lns-study', { variants }, { files: { 'diagnostics.json': { pre: diag([1, 2], [0.1]), lns: diag([1, 1], [0.2]) } } }), [
      child('c1', 0),
      child('c2', 0.5),
    ]);
    expect(page.table?.columns.map((c) => c.key)).toEqual(['variant', 'final_val_loss', 'final_val_ppl', 'run_id']);
    const train = byId(page.figures, 'overlay-train');
    expect(train.kind === 'lines' && train.series.map((s) => s.label)).toEqual(['pre', 'lns']);
    if (train.kind === 'lines') expect(train.series[1].y).toEqual([4.5, 3.5, 2.5]);
    const val = byId(page.figures, 'overlay-val');
    if (val.kind === 'lines')
      expect(val.series.map((s) => [s.x, s.y])).toEqual([
        [[3], [3]],
        [[3], [3.5]],
      ]);
    expect(page.shown).toContain('variants');
  });

  it('ln-removal: the CE table from ce_table.csv, removal markers only on the LN-removal curves, σ bars per site', () => {
    const metrics = [
      { step: 0, original_val_ce: 4 },
      { step: 1, vanilla_ce: 3.9 },
      { step: 2, vanilla_ce: 3.8 },
      { step: 1, ln_free_ce: 3.95 },
      { step: 2, ln_free_ce: 3.85 },
      { step: 2, removed: 'h.0.ln_2' },
      { step: 2, vanilla_val_ce: 3.7, ln_free_val_ce: 3.75 },
    ];
    const summary = { original_val_ce: 4, sigmas: { 'h.0.ln_2': 0.5, ln_f: 0.25 }, schedule: [{ step: 2, site: 'h.0.ln_2' }] };
    const ce = { columns: ['model', 'val_ce', 'minus_original', 'minus_vanilla'], rows: [['LN-free', '3.75', '-0.25', '0.05']] };
    const page = resultsPage(run('ln-removal', summary, { metrics, files: { 'ce_table.csv': ce } }));
    expect(page.table?.rows).toEqual([{ model: 'LN-free', val_ce: 3.75, minus_original: -0.25, minus_vanilla: 0.05 }]);
    const train = byId(page.figures, 'ft-train');
    expect(train.kind === 'lines' && train.series.map((s) => s.label)).toEqual(['vanilla', 'LN removal']);
    if (train.kind === 'lines') expect(train.markers).toEqual([{ x: 2, label: 'h.0.ln_2' }]);
    const val = byId(page.figures, 'ft-val');
    if (val.kind === 'lines') expect(val.series[0]).toMatchObject({ label: 'vanilla', x: [0, 2], y: [4, 3.7] });
    const sig = byId(page.figures, 'sigmas');
    expect(sig.kind === 'bars' && sig.categories).toEqual(['h.0.ln_2', 'ln_f']);
    expect(removalMarkers({})).toEqual([]);
    // A vanilla arm run (its own child run) has the schedule in its summary but no LN-free series.
    const vanillaArm = resultsPage(run('ln-removal', summary, { metrics: metrics.slice(0, 3), files: {} }));
    const armTrain = byId(vanillaArm.figures, 'ft-train');
    expect(armTrain.kind === 'lines' && armTrain.markers).toEqual([]);
  });

  it("ln-removal: each model's DLA NMAE with its bootstrap interval, as an untinted grid and in the scatters' notes", () => {
    const summary = {
      dla_nmae: {
        original: { nmae_pct: 76.449, ci95_lo: 70.12, ci95_hi: 82.31, prompts: 8, tokens: 128 },
        vanilla: { nmae_pct: 76.54, ci95_lo: 69.9, ci95_hi: 83.0, prompts: 8, tokens: 128 },
        ln_free: { nmae_pct: 0, ci95_lo: 0, ci95_hi: 0, prompts: 8, tokens: 128 },
      },
      dla_nmae_interval: 'percentile bootstrap over 8 prompts (2000 resamples, seed 0)',
    };
    const points = { points: [{ label: 'LN-free', nmae_pct: 0, nmae_ci95: [0, 0], interval: summary.dla_nmae_interval, de: [1, 2], dla: [1, 2] }] };
    const page = resultsPage(run('ln-removal', summary, { files: { 'dla_points.json': points } }));
    const grid = page.grids[0];
    expect(grid).toMatchObject({ rows: ['original', 'vanilla fine-tune', 'LN-free'], values: [[76.449], [76.54], [0]], plain: true });
    expect(grid.intervals).toEqual([[[70.12, 82.31]], [[69.9, 83.0]], [[0, 0]]]);
    expect(grid.note).toContain('95% interval: percentile bootstrap over 8 prompts');
    expect(page.shown).toEqual(expect.arrayContaining(['dla_nmae', 'dla_nmae_interval']));
    const fig = byId(page.figures, 'dla-LN-free');
    expect(fig.kind === 'lines' && fig.note).toContain('NMAE 0.00 [0.00, 0.00] % (95% interval: percentile bootstrap over 8 prompts');
    // Three significant digits of the half-width (6.10) set two decimals; a scatter written before intervals keeps its bare NMAE.
    expect(figuresModule.nmaeText(76.449, [70.12, 82.31], null)).toBe('NMAE 76.45 [70.12, 82.31] %');
    expect(figuresModule.nmaeText(3.14159, null, null)).toBe('NMAE 3.14 %');
    expect(figuresModule.dlaNmaeGrid({})).toBeNull();
  });

  it("ptq-study: preset × bit width is a grid (FP as reference row), the drop in points as bars, the histogram with each quantizer's levels", () => {
    const summary = { fp_top1: 0.5, eval_images: 100, table: { uniform: { W4A4: 0.4, W8A8: 0.49 }, dopq: { W4A4: 0.45, W8A8: 0.5 } } };
    const files = {
      'softmax_levels.json': { bits: 4, values: 10, histogram: { lo: 0, width: 0.5, counts: [7, 3] }, quantizers: [{ name: 'uniform', levels: [0, 0.5, 1] }] },
    };
    const page = resultsPage(run('ptq-study', summary, { files }));
    expect(page.grids[0].rows).toEqual(['full precision', 'uniform', 'dopq']);
    expect(page.grids[0].values).toEqual([
      [0.5, 0.5],
      [0.4, 0.49],
      [0.45, 0.5],
    ]);
    expect(page.grids[0].reference).toBe('full precision');
    const drop = byId(page.figures, 'drop');
    if (drop.kind === 'bars')
      expect(drop.groups.map((g) => g.values.map((v) => Number(v!.toFixed(6))))).toEqual([
        [10, 1],
        [5, 0],
      ]);
    const h = byId(page.figures, 'softmax');
    expect(h.kind === 'histogram' && h.counts).toEqual([7, 3]);
    if (h.kind === 'histogram') expect(h.levels[0].values).toEqual([0, 0.5, 1]);
    // No figure plots anything over a step or index axis.
    for (const f of page.figures) if (f.kind === 'lines') expect(f.xLabel).not.toMatch(/^(index|step)$/);
  });

  it('lct: FID of one step and two as bars, the class histogram over the class names; class names and latent shape are not plotted', () => {
    const summary = { fid_1step: 40, fid_2step: 35, class_names: ['0', '1'], class_histogram_1step: [0.25, 0.75], network: { latent_shape: [4, 4, 4] } };
    const page = resultsPage(run('lct', summary));
    expect(page.figures.map((f) => f.id)).toEqual(['fid', 'classes']);
    const c = byId(page.figures, 'classes');
    if (c.kind === 'bars') expect(c.categories).toEqual(['0', '1']);
    expect(page.shown).toContain('class_names');
    expect(page.figures.some((f) => /latent|class names/i.test(f.title))).toBe(false);
  });

  it("lct-study: configurations table first, FID bars per configuration, children's losses overlaid (never a line through two configurations)", () => {
    const table = [
      { configuration: 'baseline', cauchy: false, fid_1step: 50, fid_2step: 45, run: 'a' },
      { configuration: 'full', cauchy: true, fid_1step: 40, fid_2step: 38, run: 'b' },
    ];
    const kids = ['a', 'b'].map((id) =>
      run(
        'lct',
        {},
        {
          id,
          name: id,
          metrics: [
            { step: 1, loss: 2 },
            { step: 2, loss: 1 },
          ],
        },
      ),
    );
    const page = resultsPage(run('lct-study', { table }), kids);
    expect(page.table?.columns.at(-1)?.key).toBe('run');
    expect(page.table?.linkColumn).toBe('run');
    const fid = byId(page.figures, 'fid');
    expect(fid.kind).toBe('bars');
    if (fid.kind === 'bars')
      expect(fid.groups.map((g) => g.values)).toEqual([
        [50, 40],
        [45, 38],
      ]);
    expect(byId(page.figures, 'overlay-train').kind).toBe('lines');
  });

  it('lns-study: the difference from the first variant is one cell with its paired interval and verdict', () => {
    const variants = [
      { variant: 'pre', final_val_loss: 4.1, val_loss_minus_first: null, val_loss_minus_first_ci95_lo: null, val_loss_minus_first_ci95_hi: null, run_id: 'c1' },
      {
        variant: 'lns',
        final_val_loss: 4.11,
        val_loss_minus_first: 0.01,
        val_loss_minus_first_ci95_lo: -0.02,
        val_loss_minus_first_ci95_hi: 0.04,
        val_loss_minus_first_verdict: 'within noise',
        run_id: 'c2',
      },
    ];
    const page = resultsPage(run('lns-study', { variants }));
    const col = page.table!.columns.find((c) => c.key === 'val_loss_minus_first')!;
    expect(col.label).toMatch(/− pre/);
    expect(page.table!.columns.some((c) => /ci95|verdict/.test(c.key))).toBe(false);
    expect(page.table!.rows[1].val_loss_minus_first).toEqual({ kind: 'diff', value: 0.01, ci95: [-0.02, 0.04], verdict: 'within noise' });
    expect(page.table!.rows[0].val_loss_minus_first).toBeNull();
  });

  it('lct-study: FID differences from the baseline (absent on the baseline row) fold into cells with interval and verdict', () => {
    const table = [
      { configuration: 'baseline', fid_1step: 50, run: 'a' },
      {
        configuration: 'full',
        fid_1step: 40,
        fid_1step_minus_baseline: -10,
        fid_1step_minus_baseline_ci95: [-14, -6],
        fid_1step_minus_baseline_verdict: 'better',
        run: 'b',
      },
    ];
    const page = resultsPage(run('lct-study', { table }));
    expect(page.table!.columns.map((c) => c.key)).toEqual(['configuration', 'fid_1step', 'fid_1step_minus_baseline', 'run']);
    expect(page.table!.rows[1].fid_1step_minus_baseline).toEqual({ kind: 'diff', value: -10, ci95: [-14, -6], verdict: 'better' });
  });

  it('ptq-study: cells carry Wilson intervals and their verdict vs full precision (tinted by verdict, not rank); DopQ − RepQ is a grid of differences', () => {
    const cell = (top1: number, verdict: string) => ({ top1, ci95: [top1 - 0.05, top1 + 0.05], minus_fp: { diff: top1 - 0.5, ci95: [-0.1, 0.01], verdict } });
    const summary = {
      fp_top1: 0.5,
      fp_top1_ci95: [0.45, 0.55],
      eval_images: 100,
      table: { repq: { W4A4: 0.4 }, dopq: { W4A4: 0.45 } },
      top1_vs_fp: { repq: { W4A4: cell(0.4, 'worse') }, dopq: { W4A4: cell(0.45, 'within noise') } },
      dopq_vs_repq: { W4A4: { dopq: 0.45, repq: 0.4, dopq_minus_repq: 0.05, ci95: [-0.01, 0.11], mcnemar_p: 0.2, verdict: 'within noise' } },
    };
    const page = resultsPage(run('ptq-study', summary));
    const [top, cmp] = page.grids;
    expect(top.verdicts).toEqual([[null], ['worse'], ['within noise']]);
    expect(top.intervals?.[0][0]).toEqual([0.45, 0.55]);
    expect(top.intervals?.[1][0]?.map((x) => Number(x.toFixed(6)))).toEqual([0.35, 0.45]);
    expect(cmp.rows).toEqual(['DopQ − RepQ']);
    expect(cmp.format).toBe('points');
    expect(cmp.values).toEqual([[0.05]]);
    expect(cmp.intervals).toEqual([[[-0.01, 0.11]]]);
    expect(cmp.verdicts).toEqual([['within noise']]);
    expect(page.shown).toEqual(expect.arrayContaining(['top1_vs_fp', 'fp_top1_ci95', 'dopq_vs_repq']));
  });

  it('a study over seeds: the per-seed table with mean ± sd first, the seed curves with ± sd bands', () => {
    const summary = {
      seeds: [0, 1],
      seed_table: [{ row: 'pre', metric: 'final_val_loss', per_seed: { '0': 4, '1': 4.2 }, n: 2, mean: 4.1, sd: 0.1414, ci95: [2.829, 5.371] }],
      key_result: { label: 'x', value: 0 },
    };
    const curves = [{ name: 'pre', x: [10, 20], y: [5, 4], lo: [4.9, 3.8], hi: [5.1, 4.2], seeds: 2 }];
    const page = resultsPage(run('lns-study', summary, { files: { 'seed_curves.json': curves } }));
    expect(page.table!.columns.map((c) => c.key)).toEqual(['row', 'metric', 'mean_sd', 'ci95', 'seed_0', 'seed_1']);
    expect(page.table!.rows[0]).toMatchObject({ row: 'pre', seed_0: 4, seed_1: 4.2 });
    expect(page.table!.rows[0].mean_sd).toMatch(/^4\.1\d* ± 0\.14/);
    const f = byId(page.figures, 'seed-curves');
    expect(f.kind === 'lines' && f.series[0]).toMatchObject({ label: 'pre (2 seeds)', x: [10, 20], y: [5, 4], band: { lo: [4.9, 3.8], hi: [5.1, 4.2] } });
    expect(page.shown).toContain('seed_table');
    expect(neededFiles('lns-study')).toContain('seed_curves.json');
    expect(neededFiles('depth-study')).not.toContain('seed_curves.json');
  });

  it('colour scales: heat colours run dark to bright, grid tints differ for best and worst in both themes', () => {
    const lum = (c: string) => {
      const [r, g, b] = c.match(/\d+/g)!.map(Number);
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    expect(lum(heatColor(0))).toBeLessThan(lum(heatColor(0.5)));
    expect(lum(heatColor(0.5))).toBeLessThan(lum(heatColor(1)));
    expect(heatColor(NaN)).toBe(heatColor(0));
    expect(gridTint(0, false)).not.toBe(gridTint(1, false));
    expect(gridTint(1, true)).toMatch(/^hsl\(130 /);
  });
});

describe('one colour per variant across the figures of a page', () => {
  it('a variant keeps its colour in every figure, even where another variant is left out', () => {
    const { pageColors } = figuresModule;
    const line = (id: string, labels: string[]): Figure => ({
      kind: 'lines',
      id,
      title: id,
      xLabel: 'step',
      yLabel: 'loss',
      series: labels.map((label) => ({ label, x: [0, 1], y: [1, 2] })),
    });
    const figures = pageColors([
      line('train', ['vanilla', 'LNS', 'LN removal']),
      line('val', ['LNS', 'LN removal']),
      {
        kind: 'bars',
        id: 'b',
        title: 'b',
        yLabel: 'y',
        categories: ['a'],
        groups: [
          { label: 'LN removal', values: [1] },
          { label: 'vanilla', values: [2] },
        ],
      },
    ]);
    const colorOf = new Map<string, Set<string>>();
    for (const f of figures) {
      const items = f.kind === 'lines' ? f.series : f.kind === 'bars' ? f.groups : [];
      for (const s of items) colorOf.set(s.label, new Set([...(colorOf.get(s.label) ?? []), s.color!]));
    }
    for (const [label, colors] of colorOf) expect(colors.size, label).toBe(1);
    expect(new Set([...colorOf.values()].map((c) => [...c][0])).size).toBe(3);
  });
});
