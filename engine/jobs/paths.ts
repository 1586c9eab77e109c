/**
 * Config fields that name files or folders. A schema marks them with `pathField`, and
 * `configPaths` finds every such value in a resolved config, so the service can check each path a
 * renderer sends (engine/store/access.ts) without knowing any job kind's layout. `checkInputPath`
 * checks one path before a run starts, so the new-run form can flag a wrong path on its field
 * instead of creating a run that fails. Paths are resolved as the jobs resolve them (relative to
 * the engine's working folder).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

export interface PathFieldInfo {
  /** Values that are names, not paths (`mnist` for an image source). */
  keywords?: readonly string[];
  /** The value is a path only when this holds for the object that contains it (`kind: folder`). */
  when?: (parent: Record<string, unknown>) => boolean;
}

// `isPath` keeps an entry non-empty: zod's registry reads an empty entry of a cloned schema as none.
const pathFields = z.registry<PathFieldInfo & { isPath: true }>();

/** Mark a (string) schema as naming a file or folder; returns the same schema. */
export function pathField<T extends z.ZodType>(schema: T, info: PathFieldInfo = {}): T {
  pathFields.add(schema, { ...info, isPath: true });
  return schema;
}

/** A schema's definition as far as walking it needs. */
interface Def {
  type: string;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  options?: z.ZodType[];
  element?: z.ZodType;
  valueType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  left?: z.ZodType;
  right?: z.ZodType;
  getter?: () => z.ZodType;
}

/** Every path value of `value` under `schema`: `{ field: 'data.path', value: '/x/y.txt' }`. */
export function configPaths(schema: z.ZodType, value: unknown): { field: string; value: string }[] {
  const found = new Map<string, string>();
  const walk = (s: z.ZodType, v: unknown, at: string[], parent: Record<string, unknown> | null, depth: number): void => {
    if (depth > 64 || v === undefined || v === null) return;
    const info = pathFields.get(s);
    if (info && typeof v === 'string' && !info.keywords?.includes(v) && (!info.when || (parent !== null && info.when(parent)))) found.set(at.join('.'), v);
    const def = (s as unknown as { _zod: { def: Def } })._zod.def;
    const next = (inner: z.ZodType | undefined) => inner && walk(inner, v, at, parent, depth + 1);
    switch (def.type) {
      case 'object':
        if (typeof v === 'object' && !Array.isArray(v))
          for (const [k, child] of Object.entries(def.shape ?? {}))
            walk(child, (v as Record<string, unknown>)[k], [...at, k], v as Record<string, unknown>, depth + 1);
        return;
      case 'array':
        if (Array.isArray(v)) v.forEach((x, i) => walk(def.element!, x, [...at, String(i)], parent, depth + 1));
        return;
      case 'record':
        if (typeof v === 'object' && !Array.isArray(v))
          for (const [k, x] of Object.entries(v as Record<string, unknown>)) walk(def.valueType!, x, [...at, k], v as Record<string, unknown>, depth + 1);
        return;
      case 'union':
        for (const o of def.options ?? []) next(o);
        return;
      case 'intersection':
        next(def.left);
        next(def.right);
        return;
      case 'pipe':
        next(def.in);
        next(def.out);
        return;
      case 'lazy':
        next(def.getter?.());
        return;
      default:
        next(def.innerType); // optional, nullable, default, prefault, readonly, catch, nonoptional
    }
  };
  walk(schema, value, [], null, 0);
  return [...found].map(([field, v]) => ({ field, value: v }));
}

export interface PathCheck {
  path: string;
  ok: boolean;
  kind?: 'file' | 'folder';
  /** Why the path cannot be used (one line), when not ok. */
  error?: string;
}

/** Whether `p` exists, is a regular file or a folder, and is readable (a folder: listable), and what it is. */
export function checkInputPath(p: string): PathCheck {
  if (p.trim() === '') return { path: p, ok: false, error: 'empty path' };
  const abs = path.resolve(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    return { path: p, ok: false, error: `no such file or folder: ${abs}` };
  }
  if (!st.isDirectory() && !st.isFile()) return { path: p, ok: false, error: `not a regular file or folder (a device, FIFO or socket): ${abs}` };
  const kind = st.isDirectory() ? 'folder' : 'file';
  try {
    fs.accessSync(abs, fs.constants.R_OK | (kind === 'folder' ? fs.constants.X_OK : 0));
  } catch {
    return { path: p, ok: false, kind, error: `${kind} is not readable: ${abs}` };
  }
  return { path: p, ok: true, kind };
}
