/**
 * Each method's results page as data: the comparison table that comes first, colour-scaled grids,
 * and the figures the renderer draws itself (interactive, theme-aware) from what the engine
 * writes: summary.json, metrics.jsonl and the JSON/CSV artifacts (diagnostics.json,
 * softmax_levels.json, ln_scales.json, dla_points.json, ce_table.csv). Pure functions, so the
 * choice of what is drawn (and that nothing is drawn over a meaningless axis) is unit-tested.
 */
import {
  asInterval,
  asSeedCurves,
  asVerdict,
  fmtWithInterval,
  foldDifferences,
  seedCells,
  seedTableRows,
  type Interval as Ci,
  type Verdict,
} from './intervals';
import { PALETTE, type Metric, type Series } from './metrics';

export interface Marker {
  x: number;
  label: string;
}

export type Figure =
  | {
      kind: 'lines';
      id: string;
      title: string;
      note?: string;
      xLabel: string;
      yLabel: string;
      series: Series[];
      logY?: boolean;
      markers?: Marker[];
      /** Draw points only (a scatter), not lines. */
      points?: boolean;
      /** Integer x values (layers, blocks, channels): ticks at whole numbers. */
      integerX?: boolean;
    }
  | ({ kind: 'heatmap'; id: string } & HeatmapData)
  | ({ kind: 'bars'; id: string } & BarsData)
  | ({ kind: 'histogram'; id: string } & HistogramData);

/** What the Heatmap component draws. */
export interface HeatmapData {
  title: string;
  note?: string;
  xLabel: string;
  yLabel: string;
  x: number[];
  y: number[];
  values: (number | null)[][];
  domain: [number, number];
  colorLabel: string;
}

/** What the Bars component draws: one bar per category and group. */
export interface BarsData {
  title: string;
  note?: string;
  yLabel: string;
  categories: string[];
  groups: { label: string; values: (number | null)[]; color?: string }[];
}

/** What the Histogram component draws: bins from `lo` of `width`, each quantizer's levels over them. */
export interface HistogramData {
  title: string;
  note?: string;
  xLabel: string;
  lo: number;
  width: number;
  counts: number[];
  levels: { label: string; values: number[]; color?: string }[];
}

export interface TableSpec {
  title: string;
  columns: { key: string; label: string }[];
  rows: Record<string, unknown>[];
  /** Column holding a run id to link to. */
  linkColumn?: string;
}

/** A rows × columns grid of numbers shown as a colour-scaled table (e.g. preset × bit width). */
export interface GridSpec {
  title: string;
  note?: string;
  rowLabel: string;
  rows: string[];
  columns: string[];
  values: (number | null)[][];
  /** How cells are written: percent, number, or `points` (a signed difference of fractions, × 100). */
  format: 'percent' | 'number' | 'points';
  /** Higher is better (colour scale direction). */
  higherIsBetter: boolean;
  /** A reference row (full precision) shown untinted and left out of the colour scale. */
  reference?: string;
  /** Each cell's 95% interval (on the values' scale), written after its value. */
  intervals?: (Ci | null)[][];
  /**
   * Each cell's verdict against `verdictOf`: with verdicts, a cell is tinted only outside noise
   * (green better, red worse) and never by its rank, so a within-noise difference looks neutral.
   */
  verdicts?: (Verdict | null)[][];
  /** What the verdicts compare (the hover says it), e.g. "vs full precision". */
  verdictOf?: string;
  /** Cells left untinted: values that are not compared with each other (no rank, no verdict). */
  plain?: boolean;
}

export interface RunData {
  id: string;
  method: string;
  name: string;
  summary: Record<string, unknown>;
  metrics: Metric[];
  /** Parsed JSON/CSV artifacts by file name (CSV as {columns, rows}). */
  files: Record<string, unknown>;
}

export interface ResultsPage {
  table: TableSpec | null;
  grids: GridSpec[];
  figures: Figure[];
  /** Summary keys this page already shows (so the generic summary view skips them). */
  shown: string[];
  /** Artifacts (JSON/CSV) the page needs loaded. */
}

/** Studies that take `seeds: [..]`: run over seeds, their page is the seed table and curves (seed_curves.json). */
const SEEDED = ['lns-study', 'ln-removal', 'lct-study', 'ptq-study'];

/** The artifacts each method's page reads (fetched, where the run has them, before `resultsPage` is called). */
export function neededFiles(method: string): string[] {
  return [...methodFiles(method), ...(SEEDED.includes(method) ? ['seed_curves.json'] : [])];
}

function methodFiles(method: string): string[] {
  switch (method) {
    case 'lm-pretrain':
    case 'lns-diagnostics':
    case 'lns-study':
      return ['diagnostics.json'];
    case 'ln-removal':
      return ['ce_table.csv', 'dla_points.json'];
    case 'dla':
      return ['dla_points.json'];
    case 'ptq-study':
      return ['softmax_levels.json', 'ln_scales.json'];
    case 'depth-study':
      return ['depth_study.json'];
    default:
      return [];
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map((x) => (isNum(x) ? x : NaN)) : []);
const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

/** Series of one metric key over steps (only lines that carry it). */
export function metricSeries(metrics: Metric[], key: string, label = key): Series {
  const pts = metrics.filter((m) => isNum(m.step) && isNum(m[key]));
  return { label, x: pts.map((m) => m.step as number), y: pts.map((m) => m[key] as number) };
}

interface Diagnostics {
  layers: number;
  variance: number[];
  angular: { n: number[]; l: number[]; d: (number | null)[][] };
  pruning: { drop_loss: number[]; drop_ppl?: number[] };
  grad_norms: { per_layer: number[]; source?: string } | null;
}

function asDiagnostics(v: unknown): Diagnostics | null {
  if (!isRecord(v) || !Array.isArray(v.variance) || !isRecord(v.angular) || !isRecord(v.pruning)) return null;
  return v as unknown as Diagnostics;
}

/** The depth-diagnostics figures of one or more models (variants overlaid, heatmaps side by side). */
export function diagnosticsFigures(models: { label: string; d: Diagnostics }[]): Figure[] {
  if (!models.length) return [];
  const figs: Figure[] = [];
  const hasLns = models.some((m) => /lns/i.test(m.label));
  const hasPre = models.some((m) => /^pre/i.test(m.label));
  figs.push({
    kind: 'lines',
    id: 'variance',
    title: 'Residual-stream variance by layer',
    note:
      hasLns && hasPre
        ? 'Pre-LN variance grows with depth; LNS scales each block norm by 1/√ℓ to keep it bounded.'
        : 'Var(x_ℓ) over all elements of the validation windows.',
    xLabel: 'layer ℓ (0 = embeddings)',
    yLabel: 'Var(x_ℓ)',
    logY: true,
    integerX: true,
    series: models.map((m) => ({ label: m.label, x: range(m.d.variance.length), y: nums(m.d.variance) })),
  });
  const dmax = Math.max(0, ...models.flatMap((m) => m.d.angular.d.flat().filter(isNum)));
  for (const m of models)
    figs.push({
      kind: 'heatmap',
      id: `angular-${m.label}`,
      title: models.length > 1 ? `Angular distance, ${m.label}` : 'Angular distance between layers ℓ and ℓ+n',
      note: 'd = arccos(cos(x_ℓ, x_ℓ+n)) / π of the last token, averaged over validation sequences.',
      xLabel: 'layer ℓ (0 = embeddings)',
      yLabel: 'n (layers ahead)',
      x: m.d.angular.l,
      y: m.d.angular.n,
      values: m.d.angular.d,
      domain: [0, dmax || 1],
      colorLabel: 'angular distance',
    });
  const L = Math.max(...models.map((m) => m.d.pruning.drop_loss.length));
  figs.push({
    kind: 'bars',
    id: 'pruning',
    title: 'Performance drop when one layer is removed',
    note: 'ΔP(ℓ) = validation cross-entropy without block ℓ − with it (nats).',
    yLabel: 'ΔP (nats)',
    categories: range(L, 1).map((l) => `block ${l}`),
    groups: models.map((m) => ({ label: m.label, values: range(L).map((i) => (isNum(m.d.pruning.drop_loss[i]) ? m.d.pruning.drop_loss[i] : null)) })),
  });
  const withGrads = models.filter((m) => m.d.grad_norms && Array.isArray(m.d.grad_norms.per_layer));
  if (withGrads.length)
    figs.push({
      kind: 'lines',
      id: 'grad-norms',
      title: 'Gradient norm per block',
      note: withGrads[0].d.grad_norms?.source === 'training' ? 'Mean over the logged training steps.' : undefined,
      xLabel: 'block',
      yLabel: '‖∇‖',
      integerX: true,
      series: withGrads.map((m) => ({ label: m.label, x: range(m.d.grad_norms!.per_layer.length, 1), y: nums(m.d.grad_norms!.per_layer) })),
    });
  return figs;
}

/** A run's train and validation losses overlaid across variants (children of a study). */
function overlaidLosses(children: RunData[], label: (c: RunData) => string, keys: { train: string; val?: string }, noun = 'variant', note?: string): Figure[] {
  const train = children.map((c) => metricSeries(c.metrics, keys.train, label(c))).filter((s) => s.x.length > 1);
  const out: Figure[] = [];
  if (train.length)
    out.push({
      kind: 'lines',
      id: 'overlay-train',
      title: `Training loss per ${noun}`,
      note,
      xLabel: 'step',
      yLabel: keys.train.replace(/_/g, ' '),
      series: train,
    });
  if (keys.val) {
    const val = children.map((c) => metricSeries(c.metrics, keys.val!, label(c))).filter((s) => s.x.length > 0);
    if (val.length)
      out.push({ kind: 'lines', id: 'overlay-val', title: `Validation loss per ${noun}`, xLabel: 'step', yLabel: keys.val.replace(/_/g, ' '), series: val });
  }
  return out;
}

function csvTable(v: unknown): { columns: string[]; rows: string[][] } | null {
  return isRecord(v) && Array.isArray(v.columns) && Array.isArray(v.rows) ? (v as { columns: string[]; rows: string[][] }) : null;
}

const col = (key: string, label = key.replace(/_/g, ' ')) => ({ key, label });

function lnsStudy(run: RunData, children: RunData[]): ResultsPage {
  const variants = Array.isArray(run.summary.variants) ? (run.summary.variants as Record<string, unknown>[]) : [];
  const keys = [
    'final_val_loss',
    'final_val_ppl',
    'val_loss_minus_first',
    'deep_half_prune_drop_mean',
    'shallow_half_prune_drop_mean',
    'variance_last_layer',
    'variance_growth_last',
    'seconds',
  ];
  // A text column equal in every variant (e.g. the norm type) says nothing in a comparison.
  const varies = (k: string) => variants.length < 2 || new Set(variants.map((v) => String(v[k]))).size > 1;
  const first = variants.length ? String(variants[0].variant) : 'first';
  const table: TableSpec = {
    title: 'Variants',
    columns: [
      col('variant'),
      ...(varies('norm_type') ? [col('norm_type', 'norm type')] : []),
      ...keys
        .filter((k) => variants.some((v) => k in v))
        .map((k) => (k === 'val_loss_minus_first' ? col(k, `val loss − ${first} (95% paired interval)`) : col(k))),
      col('run_id', 'run'),
    ],
    // The difference from the first variant, its interval and verdict as one cell.
    rows: foldDifferences([...new Set(variants.flatMap((v) => Object.keys(v)))], variants).rows,
    linkColumn: 'run_id',
  };
  const diag = isRecord(run.files['diagnostics.json']) ? (run.files['diagnostics.json'] as Record<string, unknown>) : {};
  const models = Object.entries(diag)
    .map(([label, d]) => ({ label, d: asDiagnostics(d) }))
    .filter((m): m is { label: string; d: Diagnostics } => m.d !== null);
  const byRun = new Map(variants.map((v) => [String(v.run_id), String(v.variant)]));
  const figures = [...overlaidLosses(children, (c) => byRun.get(c.id) ?? c.name, { train: 'loss', val: 'val_loss' }), ...diagnosticsFigures(models)];
  return { table, grids: [], figures, shown: ['variants', 'artifacts'] };
}

interface Interval {
  mean: number;
  lo: number;
  hi: number;
}

/** One model of depth_study.json (engine/methods/lns/depth-study.ts `ModelSummary`). */
export interface DepthModel {
  label: string;
  run_id: string;
  model: string;
  layers: number;
  base_loss: number;
  drop_loss: number[];
  drop_loss_lo: number[];
  drop_loss_hi: number[];
  block_influence: number[];
  variance: number[];
  angular: { n: number[]; l: number[]; d: (number | null)[][] };
  best_block: { n: number; l: number; d: number }[];
  shallow_half: Interval;
  deep_half: Interval;
}

/** The models of a depth study, in the order of its config (each model's colour is its place here, in every figure). */
export function depthModels(run: RunData): DepthModel[] {
  const f = run.files['depth_study.json'];
  return isRecord(f) && Array.isArray(f.models) ? (f.models as DepthModel[]) : [];
}

const ci = (i: Interval) => `${i.mean.toPrecision(3)} [${i.lo.toPrecision(3)}, ${i.hi.toPrecision(3)}]`;

/**
 * The depth study: each model's deep vs shallow half table, ΔP against relative depth with its
 * paired intervals (cross-entropy, not the paper's MMLU accuracy), the angular-distance heatmaps on
 * one colour scale, Block Influence and variance against relative depth.
 */
function depthStudy(run: RunData): ResultsPage {
  const models = depthModels(run);
  const rel = (m: DepthModel) => range(m.layers, 1).map((l) => l / m.layers);
  const table: TableSpec = {
    title: 'Deep half vs shallow half (mean ΔP, nats, 95% paired interval)',
    columns: [
      col('model'),
      col('layers'),
      col('full_model_loss', 'full model CE'),
      col('shallow', 'shallow half ΔP'),
      col('deep', 'deep half ΔP'),
      col('best_block', 'Gromov ℓ*(n), n = 1, 2, …'),
      col('run_id', 'run'),
    ],
    rows: models.map((m) => ({
      model: m.label,
      layers: m.layers,
      full_model_loss: m.base_loss,
      shallow: ci(m.shallow_half),
      deep: ci(m.deep_half),
      best_block: m.best_block
        .slice(0, 4)
        .map((b) => b.l)
        .join(', '),
      run_id: m.run_id,
    })),
    linkColumn: 'run_id',
  };
  if (!models.length) return { table: null, grids: [], figures: [], shown: ['models'] };
  const dmax = Math.max(0, ...models.flatMap((m) => m.angular.d.flat().filter(isNum)));
  const figures: Figure[] = [
    {
      kind: 'lines',
      id: 'depth-drop',
      title: 'Cross-entropy increase when one block is removed',
      note: 'ΔP(ℓ) = validation CE without block ℓ − CE of the full model (nats; the paper plots MMLU accuracy). Bands: 95% paired t-intervals over the windows.',
      xLabel: 'relative depth ℓ / L',
      yLabel: 'CE increase ΔP (nats)',
      series: models.map((m) => ({ label: m.label, x: rel(m), y: nums(m.drop_loss), band: { lo: nums(m.drop_loss_lo), hi: nums(m.drop_loss_hi) } })),
    },
    {
      kind: 'lines',
      id: 'depth-bi',
      title: 'Block Influence by relative depth',
      note: 'BI(ℓ) = 1 − cos(x_ℓ−1, x_ℓ), averaged over every token (ShortGPT).',
      xLabel: 'relative depth ℓ / L',
      yLabel: 'Block Influence',
      series: models.map((m) => ({ label: m.label, x: rel(m), y: nums(m.block_influence) })),
    },
    {
      kind: 'lines',
      id: 'depth-variance',
      title: 'Residual-stream variance by relative depth',
      xLabel: 'relative depth ℓ / L (0 = embeddings)',
      yLabel: 'Var(x_ℓ)',
      logY: true,
      series: models.map((m) => ({ label: m.label, x: m.variance.map((_, l) => l / m.layers), y: nums(m.variance) })),
    },
    ...models.map((m): Figure => ({
      kind: 'heatmap',
      id: `depth-angular-${m.label}`,
      title: `Angular distance, ${m.label}`,
      note: 'd(ℓ, n) of the last token; every model on the same colour scale.',
      xLabel: 'layer ℓ (0 = embeddings)',
      yLabel: 'n (layers ahead)',
      x: m.angular.l,
      y: m.angular.n,
      values: m.angular.d,
      domain: [0, dmax || 1],
      colorLabel: 'angular distance',
    })),
  ];
  return { table, grids: [], figures, shown: ['models', 'artifacts'] };
}

function lmRun(run: RunData): ResultsPage {
  const d = asDiagnostics(run.files['diagnostics.json']);
  return { table: null, grids: [], figures: d ? diagnosticsFigures([{ label: run.name, d }]) : [], shown: ['lns_diagnostics'] };
}

/** LN-removal steps from the summary's schedule (only the LN-removal run's charts get them). */
export function removalMarkers(summary: Record<string, unknown>): Marker[] {
  const s = summary.schedule;
  return Array.isArray(s)
    ? s.filter((e) => isRecord(e) && isNum(e.step)).map((e) => ({ x: (e as { step: number }).step, label: String((e as { site?: unknown }).site ?? '') }))
    : [];
}

/** One model's DLA scatter (dla_points.json); its NMAE interval and how it was computed where the engine wrote them. */
interface DlaPoints {
  label: string;
  nmae_pct: number;
  nmae_ci95?: unknown;
  interval?: unknown;
  de: number[];
  dla: number[];
}

/** "NMAE 76.4 % [70.1, 82.3] (95% interval: percentile bootstrap over 8 prompts …)", or the bare NMAE without an interval. */
export function nmaeText(nmae: number, ci95: Ci | null, interval: string | null): string {
  if (!ci95) return `NMAE ${nmae.toPrecision(3)} %`;
  return `NMAE ${fmtWithInterval(nmae, ci95)} %${interval ? ` (95% interval: ${interval})` : ''}`;
}

function dlaFigures(run: RunData): Figure[] {
  const f = run.files['dla_points.json'];
  if (!isRecord(f) || !Array.isArray(f.points)) return [];
  return (f.points as DlaPoints[]).map((p) => {
    const order = range(p.de.length).sort((a, b) => p.de[a] - p.de[b]);
    const nmae = nmaeText(p.nmae_pct, asInterval(p.nmae_ci95), typeof p.interval === 'string' ? p.interval : null);
    return {
      kind: 'lines',
      id: `dla-${p.label}`,
      title: `DLA vs direct effect, ${p.label}`,
      note: `Each point is one head at one token (a subsample); ${nmae}. Exact attribution puts every point on the diagonal.`,
      xLabel: 'direct effect',
      yLabel: 'direct logit attribution',
      points: true,
      series: [{ label: 'head × token', x: order.map((i) => p.de[i]), y: order.map((i) => p.dla[i]) }],
    } satisfies Figure;
  });
}

function lnRemoval(run: RunData): ResultsPage {
  const ce = csvTable(run.files['ce_table.csv']);
  const table: TableSpec | null = ce
    ? {
        title: 'Validation cross-entropy',
        columns: ce.columns.map((c) => col(c, c === 'val_ce' ? 'val CE' : c === 'minus_original' ? '− original' : c === 'minus_vanilla' ? '− vanilla' : c)),
        rows: ce.rows.map((r) => Object.fromEntries(ce.columns.map((c, i) => [c, r[i] === '' ? null : Number.isNaN(Number(r[i])) ? r[i] : Number(r[i])]))),
      }
    : null;
  const m = run.metrics;
  // The removal schedule is marked only where an LN-removal series is drawn (not on a vanilla arm).
  const marks = m.some((l) => 'ln_free_ce' in l) ? removalMarkers(run.summary) : [];
  const train = [metricSeries(m, 'vanilla_ce', 'vanilla'), metricSeries(m, 'ln_free_ce', 'LN removal')].filter((s) => s.x.length > 1);
  const original = isNum(run.summary.original_val_ce) ? (run.summary.original_val_ce as number) : null;
  const withStart = (s: Series): Series => (original !== null && s.x.length && s.x[0] > 0 ? { ...s, x: [0, ...s.x], y: [original, ...s.y] } : s);
  const val = [metricSeries(m, 'vanilla_val_ce', 'vanilla'), metricSeries(m, 'ln_free_val_ce', 'LN removal')].filter((s) => s.x.length).map(withStart);
  const figures: Figure[] = [];
  if (train.length)
    figures.push({
      kind: 'lines',
      id: 'ft-train',
      title: 'Fine-tuning CE (train)',
      note: 'Dashed rules: one LN site removed (LN-removal run only).',
      xLabel: 'fine-tuning step',
      yLabel: 'CE (nats/token)',
      series: train,
      markers: marks,
    });
  if (val.length)
    figures.push({
      kind: 'lines',
      id: 'ft-val',
      title: 'Fine-tuning CE (validation)',
      xLabel: 'fine-tuning step',
      yLabel: 'CE (nats/token)',
      series: val,
      markers: marks,
    });
  if (isRecord(run.summary.sigmas)) {
    const sites = Object.keys(run.summary.sigmas);
    figures.push({
      kind: 'bars',
      id: 'sigmas',
      title: 'Frozen σ per LN site',
      note: 'The fixed scalar each LayerNorm became (its average σ at removal).',
      yLabel: 'σ',
      categories: sites,
      groups: [{ label: 'σ', values: sites.map((s) => ((run.summary.sigmas as Record<string, unknown>)[s] as number) ?? null) }],
    });
  }
  figures.push(...dlaFigures(run));
  const nmae = dlaNmaeGrid(run.summary);
  return { table, grids: nmae ? [nmae] : [], figures, shown: ['sigmas', 'schedule', ...(nmae ? ['dla_nmae', 'dla_nmae_interval'] : [])] };
}

const DLA_MODELS: Record<string, string> = { original: 'original', vanilla: 'vanilla fine-tune', ln_free: 'LN-free' };

/**
 * The summary's DLA-vs-DE NMAE of each model (`dla_nmae`) with its 95% interval, as an untinted
 * grid: the models' NMAEs are each one's own estimate, not a comparison with a verdict.
 */
export function dlaNmaeGrid(summary: Record<string, unknown>): GridSpec | null {
  const rows = summary.dla_nmae;
  if (!isRecord(rows)) return null;
  const models = Object.keys(rows).filter((k) => isRecord(rows[k]) && isNum((rows[k] as Record<string, unknown>).nmae_pct));
  if (!models.length) return null;
  const at = (k: string) => rows[k] as { nmae_pct: number; ci95_lo?: unknown; ci95_hi?: unknown };
  const how = typeof summary.dla_nmae_interval === 'string' ? summary.dla_nmae_interval : null;
  return {
    title: 'DLA vs direct effect: NMAE (%)',
    note: `mean |DLA − DE| / mean |DE| over every head and scored token${how ? `; 95% interval: ${how}` : ''}`,
    rowLabel: 'model',
    rows: models.map((k) => DLA_MODELS[k] ?? k),
    columns: ['NMAE (%)'],
    values: models.map((k) => [at(k).nmae_pct]),
    intervals: models.map((k) => [isNum(at(k).ci95_lo) && isNum(at(k).ci95_hi) ? [at(k).ci95_lo as number, at(k).ci95_hi as number] : null]),
    format: 'number',
    higherIsBetter: false,
    plain: true,
  };
}

function lctRun(run: RunData): ResultsPage {
  const s = run.summary;
  const names = Array.isArray(s.class_names) ? (s.class_names as unknown[]).map(String) : [];
  const groups = [
    ['class_histogram_1step', '1 step'],
    ['class_histogram_2step', '2 steps'],
    ['class_histogram_reference', 'reference images'],
  ]
    .filter(([k]) => Array.isArray(s[k]))
    .map(([k, label]) => ({ label, values: nums(s[k]) }));
  const figures: Figure[] = [];
  if (isNum(s.fid_1step) || isNum(s.fid_2step))
    figures.push({
      kind: 'bars',
      id: 'fid',
      title: String(s.fid_label ?? 'FID'),
      note: isNum(s.fid_floor_autoencoder)
        ? `Floor: the autoencoder's own reconstructions score ${(s.fid_floor_autoencoder as number).toFixed(2)}.`
        : undefined,
      yLabel: 'FID (lower is better)',
      categories: ['1 step', '2 steps'],
      groups: [{ label: 'FID', values: [isNum(s.fid_1step) ? s.fid_1step : null, isNum(s.fid_2step) ? s.fid_2step : null] }],
    });
  if (groups.length && names.length)
    figures.push({
      kind: 'bars',
      id: 'classes',
      title: 'Class histogram of the samples',
      note: 'Fraction of samples the classifier assigns to each class.',
      yLabel: 'fraction',
      categories: names,
      groups,
    });
  return { table: null, grids: [], figures, shown: ['class_names', 'class_histogram_1step', 'class_histogram_2step', 'class_histogram_reference'] };
}

function lctStudy(run: RunData, children: RunData[]): ResultsPage {
  const rows = Array.isArray(run.summary.table) ? (run.summary.table as Record<string, unknown>[]) : [];
  // Every row's columns (the baseline row has no differences); each difference, its interval and verdict as one cell.
  const folded = foldDifferences([...new Set(rows.flatMap((r) => Object.keys(r)))], rows);
  const cols = folded.columns;
  const labels: Record<string, string> = {
    fid_1step: 'FID 1 step',
    fid_2step: 'FID 2 steps',
    fid_1step_minus_baseline: 'FID 1 step − baseline (95%)',
    fid_2step_minus_baseline: 'FID 2 steps − baseline (95%)',
  };
  const table: TableSpec = {
    title: 'Configurations',
    columns: [...cols.filter((c) => c !== 'run'), ...(cols.includes('run') ? ['run'] : [])].map((c) => col(c, labels[c])),
    rows: folded.rows,
    linkColumn: 'run',
  };
  const figures: Figure[] = [];
  if (rows.length)
    figures.push({
      kind: 'bars',
      id: 'fid',
      title: `${String(run.summary.fid_label ?? 'FID')} by configuration`,
      note: isNum(run.summary.fid_floor_autoencoder)
        ? `Floor: autoencoder reconstructions score ${(run.summary.fid_floor_autoencoder as number).toFixed(2)}.`
        : undefined,
      yLabel: 'FID (lower is better)',
      categories: rows.map((r) => String(r.configuration)),
      groups: [
        { label: '1 step', values: rows.map((r) => (isNum(r.fid_1step) ? r.fid_1step : null)) },
        { label: '2 steps', values: rows.map((r) => (isNum(r.fid_2step) ? r.fid_2step : null)) },
      ],
    });
  const lct = children.filter((c) => c.method === 'lct');
  figures.push(
    ...overlaidLosses(
      lct,
      (c) => c.name,
      { train: 'loss' },
      'configuration',
      'The training objective differs between configurations (Cauchy or squared distance, the diffusion term): compare shapes, not levels.',
    ),
  );
  return { table, grids: [], figures, shown: ['table', 'runs'] };
}

function ptqStudy(run: RunData): ResultsPage {
  const s = run.summary;
  const grids: GridSpec[] = [];
  const figures: Figure[] = [];
  if (isRecord(s.table)) {
    const presets = Object.keys(s.table);
    const columns = [...new Set(presets.flatMap((p) => Object.keys((s.table as Record<string, Record<string, unknown>>)[p])))];
    const fp = isNum(s.fp_top1) ? s.fp_top1 : null;
    const cell = (p: string, c: string) => {
      const v = (s.table as Record<string, Record<string, unknown>>)[p][c];
      return isNum(v) ? v : null;
    };
    // Per cell (top1_vs_fp): its Wilson interval and the paired verdict against full precision.
    const vsFp = (p: string, c: string): Record<string, unknown> | null => {
      const v = isRecord(s.top1_vs_fp) && isRecord(s.top1_vs_fp[p]) ? s.top1_vs_fp[p][c] : null;
      return isRecord(v) ? v : null;
    };
    const hasVs = presets.some((p) => columns.some((c) => vsFp(p, c)));
    const fpCi = asInterval(s.fp_top1_ci95);
    grids.push({
      title: 'Top-1 accuracy by preset and bit width',
      note:
        (fp !== null ? `Full precision: ${(100 * fp).toFixed(2)} % on ${String(s.eval_images ?? '?')} images. ` : '') +
        (hasVs
          ? 'Brackets: 95% Wilson intervals. A cell is tinted only where its paired difference from full precision (exact McNemar) is outside noise.'
          : ''),
      rowLabel: 'preset',
      rows: [...(fp !== null ? ['full precision'] : []), ...presets],
      columns,
      values: [...(fp !== null ? [columns.map(() => fp)] : []), ...presets.map((p) => columns.map((c) => cell(p, c)))],
      format: 'percent',
      higherIsBetter: true,
      reference: fp !== null ? 'full precision' : undefined,
      ...(hasVs
        ? {
            intervals: [...(fp !== null ? [columns.map(() => fpCi)] : []), ...presets.map((p) => columns.map((c) => asInterval(vsFp(p, c)?.ci95)))],
            verdicts: [
              ...(fp !== null ? [columns.map(() => null)] : []),
              ...presets.map((p) => columns.map((c) => asVerdict((vsFp(p, c)?.minus_fp as Record<string, unknown> | undefined)?.verdict))),
            ],
            verdictOf: 'vs full precision',
          }
        : {}),
    });
    if (isRecord(s.dopq_vs_repq)) {
      const cmp = s.dopq_vs_repq as Record<string, Record<string, unknown>>;
      const cs = columns.filter((c) => isRecord(cmp[c]) && isNum(cmp[c].dopq_minus_repq));
      if (cs.length)
        grids.push({
          title: 'DopQ − RepQ top-1 (points, 95% interval)',
          note: `Paired on the same ${String(s.eval_images ?? '?')} images: exact McNemar and its Clopper–Pearson interval. Tinted only outside noise.`,
          rowLabel: 'comparison',
          rows: ['DopQ − RepQ'],
          columns: cs,
          values: [cs.map((c) => cmp[c].dopq_minus_repq as number)],
          intervals: [cs.map((c) => asInterval(cmp[c].ci95))],
          verdicts: [cs.map((c) => asVerdict(cmp[c].verdict))],
          verdictOf: 'DopQ vs RepQ',
          format: 'points',
          higherIsBetter: true,
        });
    }
    if (fp !== null)
      figures.push({
        kind: 'bars',
        id: 'drop',
        title: 'Top-1 lost to quantization',
        yLabel: 'points below full precision',
        categories: columns,
        groups: presets.map((p) => ({ label: p, values: columns.map((c) => (cell(p, c) === null ? null : 100 * (fp - cell(p, c)!))) })),
      });
  }
  const sl = run.files['softmax_levels.json'];
  if (isRecord(sl) && isRecord(sl.histogram) && Array.isArray(sl.quantizers)) {
    const h = sl.histogram as { lo: number; width: number; counts: number[] };
    figures.push({
      kind: 'histogram',
      id: 'softmax',
      title: `Post-softmax attention probabilities and ${String(sl.bits)}-bit quantizer levels`,
      note: `${String(sl.values)} values from the calibration images, all blocks; count axis is logarithmic.`,
      xLabel: 'attention probability',
      lo: h.lo,
      width: h.width,
      counts: h.counts,
      levels: (sl.quantizers as { name: string; levels: number[] }[]).map((q) => ({ label: q.name, values: q.levels })),
    });
  }
  const ls = run.files['ln_scales.json'];
  if (isRecord(ls) && Array.isArray(ls.scales)) {
    const sc = nums(ls.scales);
    const x = range(sc.length);
    const rule = (k: string, label: string): Series[] => (isNum(ls[k]) ? [{ label, x, y: x.map(() => ls[k] as number) }] : []);
    figures.push({
      kind: 'lines',
      id: 'ln-scales',
      title: `Per-channel ${String(ls.bits)}-bit scales after ${String(ls.plotted)}`,
      note: 'Horizontal lines: the shared scale each reparameterization picks.',
      xLabel: 'channel',
      yLabel: 'quantization scale',
      integerX: true,
      series: [
        { label: 'channel scale', x, y: sc },
        ...rule('mean', 'mean (RepQ-ViT)'),
        ...rule('median', 'median (DopQ-ViT)'),
        ...rule('mad_rule', 'MAD-trimmed mean'),
      ],
    });
  }
  return { table: null, grids, figures, shown: ['table', 'table_markdown', 'dopq_vs_repq', 'ln_scales', 'top1_vs_fp', 'fp_top1_ci95'] };
}

/**
 * A study run over seeds (`seeds: [..]`, engine/jobs/seeds.ts): each row × metric of the study's
 * table with mean ± sd, the t interval over seeds and every seed's value; each curve's mean over
 * seeds with its ± sd band.
 */
export function seedStudy(run: RunData): ResultsPage {
  const seeds = Array.isArray(run.summary.seeds) ? run.summary.seeds.filter(isNum) : [];
  const t = seedTableRows(seedCells(run.summary), seeds);
  const curves = asSeedCurves(run.files['seed_curves.json']);
  const figures: Figure[] = curves.length
    ? [
        {
          kind: 'lines',
          id: 'seed-curves',
          title: `${run.method === 'lns-study' ? 'Validation loss' : 'Curves'}: mean over seeds`,
          note: 'Bands: ± 1 sd over seeds at each step every seed logged.',
          xLabel: 'step',
          yLabel: run.method === 'lns-study' ? 'validation cross-entropy (nats)' : 'value',
          series: curves.map((c) => ({ label: `${c.name} (${c.seeds} seeds)`, x: nums(c.x), y: nums(c.y), band: { lo: nums(c.lo), hi: nums(c.hi) } })),
        },
      ]
    : [];
  return {
    table: { title: `Per seed, mean ± sd over ${seeds.length} seeds`, columns: t.columns, rows: t.rows },
    grids: [],
    figures,
    shown: ['seed_table', 'seeds'],
  };
}

/**
 * One colour per variant (series, bar group, quantizer) across every figure of a page: each name gets the next palette colour at
 * its first appearance, in figure order, so a variant left out of one figure (no data) does not shift the others' colours there.
 */
export function pageColors(figures: Figure[]): Figure[] {
  const colors = new Map<string, string>();
  const color = (label: string) => {
    if (!colors.has(label)) colors.set(label, PALETTE[colors.size % PALETTE.length]);
    return colors.get(label)!;
  };
  return figures.map((f) => {
    if (f.kind === 'lines') return { ...f, series: f.series.map((s) => ({ ...s, color: color(s.label) })) };
    if (f.kind === 'bars') return { ...f, groups: f.groups.map((g) => ({ ...g, color: color(g.label) })) };
    if (f.kind === 'histogram') return { ...f, levels: f.levels.map((l) => ({ ...l, color: color(l.label) })) };
    return f;
  });
}

/** The results page of one run, given its data and (for studies) its children's; one colour per variant on the whole page. */
export function resultsPage(run: RunData, children: RunData[] = []): ResultsPage {
  const page = methodPage(run, children);
  return { ...page, figures: pageColors(page.figures) };
}

function methodPage(run: RunData, children: RunData[]): ResultsPage {
  if (Array.isArray(run.summary.seed_table)) return seedStudy(run);
  switch (run.method) {
    case 'lns-study':
      return lnsStudy(run, children);
    case 'depth-study':
      return depthStudy(run);
    case 'lm-pretrain':
    case 'lns-diagnostics':
      return lmRun(run);
    case 'ln-removal':
      return lnRemoval(run);
    case 'dla':
      return { table: null, grids: [], figures: dlaFigures(run), shown: [] };
    case 'lct':
      return lctRun(run);
    case 'lct-study':
      return lctStudy(run, children);
    case 'ptq-study':
      return ptqStudy(run);
    default:
      return { table: null, grids: [], figures: [], shown: [] };
  }
}

/** Colour of a grid cell: t in [0, 1] (0 = worst, 1 = best) → a red-to-green tint. */
export function gridTint(t: number, dark: boolean): string {
  const c = Math.max(0, Math.min(1, t));
  const hue = 10 + 120 * c;
  return dark ? `hsl(${hue} 45% ${22 + 8 * c}%)` : `hsl(${hue} 60% ${88 - 6 * c}%)`;
}

/** Viridis-like colour for t in [0, 1] (perceptually ordered, readable in both themes). */
export function heatColor(t: number): string {
  const stops = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ];
  const c = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(c));
  const f = c - i;
  const mix = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return `rgb(${mix[0]}, ${mix[1]}, ${mix[2]})`;
}
