/**
 * The config fields that name files or folders (data files, model folders, image folders), so
 * the new-run form can have the engine check them before a run starts.
 */

/** Keys whose string value is always a path. */
const PATH_KEYS = new Set(['path', 'model', 'model_dir', 'eval_source', 'init_from']);

/** A `source` value that is a path rather than a built-in data set keyword. */
const looksLikePath = (v: string) => /[\\/]/.test(v) || /^\.\.?$/.test(v);

/** Every non-empty path-valued field of a config, with its dotted field path. */
export function pathFields(config: Record<string, unknown>, prefix = ''): { path: string; value: string }[] {
  const out: { path: string; value: string }[] = [];
  for (const [k, v] of Object.entries(config)) {
    const p = prefix ? `${prefix}.${k}` : k;
    // `path` next to `kind: run` names a run id, not a file.
    const isPath = (PATH_KEYS.has(k) && !(k === 'path' && config.kind === 'run')) || (k === 'source' && looksLikePath(v as string));
    if (typeof v === 'string' && v.trim() !== '' && isPath) out.push({ path: p, value: v });
    else if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...pathFields(v as Record<string, unknown>, p));
  }
  return out;
}
