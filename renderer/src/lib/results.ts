/**
 * How a run's results are shown. Everything in a summary is rendered generically (scalars as a
 * key/value table, lists of records as tables, number lists as curves, matrices as tables); each
 * method family adds titles and an order for its artifact plots, so the LNS diagnostics, the
 * LN-removal curves, the LCT sample grids and the PTQ histograms read as their papers show them.
 */

export interface FigureRule {
  match: RegExp;
  title: string;
  note?: string;
}

export interface MethodView {
  family: string;
  title: string;
  figures: FigureRule[];
  /** Summary keys shown first, in this order (regexes). */
  tables: RegExp[];
}

const LNS_FIGURES: FigureRule[] = [
  { match: /varian/i, title: 'Residual-stream variance by layer', note: 'Pre-LN variance grows with depth; LNS keeps it bounded.' },
  {
    match: /angul|angle|distance/i,
    title: 'Angular distance between layers l and l+n',
    note: 'd = arccos(cos(x_l, x_{l+n})) / π of the last token, averaged.',
  },
  { match: /prun|drop|remov|skip/i, title: 'Performance drop when one layer is removed', note: 'ΔP(l) = P(without layer l) − P(model).' },
  { match: /grad/i, title: 'Gradient norm per block' },
  { match: /loss|ppl|perplex|curve/i, title: 'Training curves' },
];

const VIEWS: MethodView[] = [
  {
    family: 'lm',
    title: 'Pretraining results and depth diagnostics',
    figures: LNS_FIGURES,
    tables: [/loss|ppl/i, /lns|diagnos/i],
  },
  {
    family: 'lns',
    title: 'LayerNorm Scaling diagnostics',
    figures: LNS_FIGURES,
    tables: [/ppl|perplex|loss/i, /varian/i, /drop|prun/i],
  },
  {
    family: 'ln-removal',
    title: 'LayerNorm removal',
    figures: [
      { match: /curve|loss|train/i, title: 'Fine-tuning curves (LN removals marked)' },
      { match: /sigma|scale/i, title: 'σ_avg per LN site' },
      { match: /dla|attribution|nmae/i, title: 'Direct logit attribution vs direct effect' },
    ],
    tables: [/ce|loss/i, /nmae|dla/i, /sigma/i],
  },
  {
    family: 'lct',
    title: 'Latent consistency training',
    figures: [
      { match: /grid|sample/i, title: 'Samples' },
      { match: /fid/i, title: 'FID' },
      { match: /recon/i, title: 'Autoencoder reconstructions' },
      { match: /loss|curve/i, title: 'Training curves' },
    ],
    tables: [/fid/i, /ablation|variant/i],
  },
  {
    family: 'ptq',
    title: 'Post-training quantization (DopQ-ViT)',
    figures: [
      { match: /acc|top-?1/i, title: 'Top-1 accuracy by bit width' },
      { match: /hist|quantiz|level/i, title: 'Quantizer histograms and levels' },
      { match: /scale|mosf|mad/i, title: 'Per-channel scales' },
    ],
    tables: [/acc|top1|top_1/i, /bits|w\d/i],
  },
];

const FAMILY: Record<string, string> = {
  'lm-pretrain': 'lm',
  'lns-diagnostics': 'lns',
  'lns-study': 'lns',
  'ln-removal': 'ln-removal',
  dla: 'ln-removal',
  'autoencoder-train': 'lct',
  lct: 'lct',
  'lct-study': 'lct',
  'vit-train': 'ptq',
  'ptq-vit': 'ptq',
  'ptq-study': 'ptq',
};

export function methodView(method: string): MethodView | null {
  const fam = FAMILY[method] ?? VIEWS.find((v) => method.startsWith(v.family))?.family;
  return VIEWS.find((v) => v.family === fam) ?? null;
}

export interface FigureGroup {
  title: string;
  note?: string;
  files: string[];
}

/** PNG artifacts grouped under the method's figure titles, in its order; the rest last. */
export function groupFigures(method: string, files: string[]): FigureGroup[] {
  const pngs = files.filter((f) => /\.png$/i.test(f));
  const view = methodView(method);
  const groups: FigureGroup[] = [];
  const used = new Set<string>();
  for (const rule of view?.figures ?? []) {
    const hit = pngs.filter((f) => !used.has(f) && rule.match.test(f));
    if (!hit.length) continue;
    hit.forEach((f) => used.add(f));
    groups.push({ title: rule.title, note: rule.note, files: hit });
  }
  const rest = pngs.filter((f) => !used.has(f));
  if (rest.length) groups.push({ title: groups.length ? 'Other plots' : 'Plots', files: rest });
  return groups;
}

export type Block =
  | { kind: 'scalars'; rows: { key: string; value: unknown }[] }
  | { kind: 'table'; title: string; columns: string[]; rows: Record<string, unknown>[] }
  | { kind: 'curve'; title: string; series: { label: string; x: number[]; y: number[] }[] }
  | { kind: 'json'; title: string; value: unknown };

const isScalar = (v: unknown) => v === null || ['number', 'string', 'boolean'].includes(typeof v);
const isNumArray = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

function columnsOf(rows: Record<string, unknown>[]): string[] {
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  return cols;
}

/** Turn one summary value into display blocks (recursing one level into records of records). */
function blocksFor(key: string, v: unknown, depth: number): Block[] {
  if (Array.isArray(v) && v.length && v.every(isRecord)) {
    const rows = (v as Record<string, unknown>[]).map((r) => Object.fromEntries(Object.entries(r).map(([k, x]) => [k, isScalar(x) ? x : JSON.stringify(x)])));
    return [{ kind: 'table', title: key, columns: columnsOf(rows), rows }];
  }
  if (isNumArray(v) && v.length < 3) return [{ kind: 'table', title: key, columns: ['index', 'value'], rows: v.map((x, i) => ({ index: i, value: x })) }];
  if (isNumArray(v)) return [{ kind: 'curve', title: key, series: [{ label: key, x: v.map((_, i) => i), y: v }] }];
  if (Array.isArray(v) && v.length && v.every(isNumArray)) {
    const width = Math.max(...(v as number[][]).map((r) => r.length));
    const cols = ['row', ...Array.from({ length: width }, (_, j) => String(j))];
    return [
      { kind: 'table', title: key, columns: cols, rows: (v as number[][]).map((r, i) => Object.fromEntries([['row', i], ...r.map((x, j) => [String(j), x])])) },
    ];
  }
  if (isRecord(v)) {
    const entries = Object.entries(v);
    if (entries.every(([, x]) => isScalar(x)))
      return [{ kind: 'table', title: key, columns: ['key', 'value'], rows: entries.map(([k, x]) => ({ key: k, value: x })) }];
    if (entries.every(([, x]) => isNumArray(x) && x.length >= 3))
      return [{ kind: 'curve', title: key, series: entries.map(([k, x]) => ({ label: k, x: (x as number[]).map((_, i) => i), y: x as number[] })) }];
    if (entries.every(([, x]) => isRecord(x) && Object.values(x).every(isScalar))) {
      const rows = entries.map(([k, x]) => ({ name: k, ...(x as Record<string, unknown>) }));
      return [{ kind: 'table', title: key, columns: columnsOf(rows), rows }];
    }
    if (depth < 1) {
      const scalars = entries.filter(([, x]) => isScalar(x));
      const out: Block[] = scalars.length
        ? [{ kind: 'table', title: key, columns: ['key', 'value'], rows: scalars.map(([k, x]) => ({ key: k, value: x })) }]
        : [];
      for (const [k, x] of entries) if (!isScalar(x)) out.push(...blocksFor(`${key}.${k}`, x, depth + 1));
      return out;
    }
  }
  if (Array.isArray(v) && v.every(isScalar))
    return [{ kind: 'table', title: key, columns: ['index', 'value'], rows: v.map((x, i) => ({ index: i, value: x })) }];
  return [{ kind: 'json', title: key, value: v }];
}

/** All blocks of a summary: scalars first, then the method's preferred tables, then the rest. */
export function summaryBlocks(method: string, summary: Record<string, unknown>): Block[] {
  const scalars: { key: string; value: unknown }[] = [];
  const others: [string, unknown][] = [];
  for (const [k, v] of Object.entries(summary)) {
    if (k === 'key_result') continue;
    if (isScalar(v)) scalars.push({ key: k, value: v });
    else others.push([k, v]);
  }
  const prefs = methodView(method)?.tables ?? [];
  const rank = (k: string) => {
    const i = prefs.findIndex((r) => r.test(k));
    return i < 0 ? prefs.length : i;
  };
  others.sort((a, b) => rank(a[0]) - rank(b[0]));
  const blocks: Block[] = others.flatMap(([k, v]) => blocksFor(k, v, 0));
  // Tables before curves before raw JSON.
  const order = { table: 0, curve: 1, json: 2, scalars: -1 } as const;
  blocks.sort((a, b) => order[a.kind] - order[b.kind]);
  return scalars.length ? [{ kind: 'scalars', rows: scalars }, ...blocks] : blocks;
}

/** Removal/event steps a summary records (e.g. ln-removal's schedule), for chart markers. */
export function summaryMarkers(summary: Record<string, unknown> | null): { x: number; label: string }[] {
  if (!summary) return [];
  for (const [k, v] of Object.entries(summary)) {
    if (!/remov|schedule/i.test(k) || !Array.isArray(v)) continue;
    const out = v
      .filter((r): r is Record<string, unknown> => isRecord(r) && typeof r.step === 'number')
      .map((r) => ({ x: r.step as number, label: String(r.site ?? r.name ?? r.label ?? k) }));
    if (out.length) return out;
  }
  return [];
}
