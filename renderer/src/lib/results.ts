/**
 * The generic part of a run's results: every summary value the method's page (figures.ts) does
 * not already show, as readable tables — scalars and nested scalars as key/value rows, short
 * lists inline, lists of records as tables (list cells shortened), anything else as a JSON tree.
 * Nothing here is drawn as a chart: a summary list has no axis that means anything by itself.
 */

export interface MethodView {
  family: string;
  title: string;
}

const VIEWS: Record<string, MethodView> = {
  lm: { family: 'lm', title: 'Pretraining results and depth diagnostics' },
  lns: { family: 'lns', title: 'LayerNorm Scaling study' },
  'ln-removal': { family: 'ln-removal', title: 'LayerNorm removal' },
  lct: { family: 'lct', title: 'Latent consistency training' },
  ptq: { family: 'ptq', title: 'Post-training quantization (DopQ-ViT)' },
  depth: { family: 'depth', title: 'Depth study across models' },
};

const FAMILY: Record<string, string> = {
  'lm-pretrain': 'lm',
  'lns-diagnostics': 'lns',
  'lns-study': 'lns',
  'depth-study': 'depth',
  prune: 'depth',
  'ln-removal': 'ln-removal',
  dla: 'ln-removal',
  'autoencoder-train': 'lct',
  'image-classifier': 'lct',
  lct: 'lct',
  'lct-study': 'lct',
  'vit-train': 'ptq',
  'ptq-vit': 'ptq',
  'ptq-study': 'ptq',
};

/** Kinds that share a family's figures but are not what the family's title names (a training stage of it). */
const TITLES: Record<string, string> = {
  'vit-train': 'ViT training (the model a PTQ study quantizes)',
  'autoencoder-train': 'Autoencoder training (the latent space of LCT)',
  'image-classifier': 'Image classifier training (the features of LCT’s FID)',
};

export function methodView(method: string): MethodView | null {
  const view = VIEWS[FAMILY[method] ?? ''];
  return view ? { ...view, title: TITLES[method] ?? view.title } : null;
}

/** Image artifacts that are pictures, not plots of data (sample grids, reconstructions): shown inline. */
export function pictureArtifacts(files: string[]): string[] {
  return files.filter((f) => /\.png$/i.test(f) && /sample|reconstruction/i.test(f) && !/-step\d+-/.test(f));
}

export type Block =
  | { kind: 'scalars'; title: string; rows: { key: string; value: string | number | boolean | null }[] }
  | { kind: 'table'; title: string; columns: string[]; rows: Record<string, unknown>[] }
  | { kind: 'json'; title: string; value: unknown };

const isScalar = (v: unknown): v is string | number | boolean | null => v === null || ['number', 'string', 'boolean'].includes(typeof v);
const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** A list of scalars written on one line ("4 × 4 × 4" for shapes, values comma-separated, long lists cut). */
export function inlineList(key: string, v: unknown[], max = 6): string {
  if (!v.length) return '(none)';
  if (/shape$/i.test(key) && v.every((x) => typeof x === 'number')) return v.join(' × ');
  const fmt = (x: unknown) => (typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toPrecision(4)) : String(x));
  const head = v.slice(0, max).map(fmt).join(', ');
  return v.length > max ? `${head}, … (${v.length} values)` : head;
}

/** Nested records of scalars and lists → dotted key rows; returns what did not fit. */
function flattenScalars(
  prefix: string,
  v: Record<string, unknown>,
  rows: { key: string; value: string | number | boolean | null }[],
  rest: [string, unknown][],
): void {
  for (const [k, x] of Object.entries(v)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isScalar(x)) rows.push({ key, value: x });
    else if (Array.isArray(x) && x.every(isScalar)) rows.push({ key, value: inlineList(k, x) });
    else if (isRecord(x) && Object.values(x).every((y) => isScalar(y) || (Array.isArray(y) && y.every(isScalar)))) flattenScalars(key, x, rows, rest);
    else rest.push([key, x]);
  }
}

const cellOf = (k: string, x: unknown): unknown => (isScalar(x) ? x : Array.isArray(x) && x.every(isScalar) ? inlineList(k, x, 4) : JSON.stringify(x));

function blockFor(key: string, v: unknown): Block {
  if (Array.isArray(v) && v.length && v.every(isRecord)) {
    const rows = (v as Record<string, unknown>[]).map((r) => Object.fromEntries(Object.entries(r).map(([k, x]) => [k, cellOf(k, x)])));
    const cols: string[] = [];
    for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
    return { kind: 'table', title: key, columns: cols, rows };
  }
  if (isRecord(v)) {
    const entries = Object.entries(v);
    if (entries.length && entries.every(([, x]) => isRecord(x) && Object.values(x).every(isScalar))) {
      const rows = entries.map(([k, x]) => ({ name: k, ...(x as Record<string, unknown>) }));
      const cols: string[] = [];
      for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
      return { kind: 'table', title: key, columns: cols, rows };
    }
  }
  return { kind: 'json', title: key, value: v };
}

/**
 * The summary's blocks, leaving out `shown` keys (drawn by the method's page), the key result and
 * warnings (the page's head shows them), and Markdown renderings of data shown elsewhere (`*_markdown`).
 */
export function summaryBlocks(summary: Record<string, unknown>, shown: string[] = []): Block[] {
  const skip = new Set(['key_result', 'warnings', ...shown]);
  const rows: { key: string; value: string | number | boolean | null }[] = [];
  const rest: [string, unknown][] = [];
  const kept = Object.fromEntries(Object.entries(summary).filter(([k]) => !skip.has(k) && !/_markdown$/.test(k)));
  flattenScalars('', kept, rows, rest);
  const blocks: Block[] = rest.map(([k, v]) => blockFor(k, v));
  blocks.sort((a, b) => (a.kind === 'json' ? 1 : 0) - (b.kind === 'json' ? 1 : 0));
  return rows.length ? [{ kind: 'scalars', title: 'Summary', rows }, ...blocks] : blocks;
}
