/**
 * Checking the file and folder paths a config names (data files, model folders) before a run
 * starts, so the new-run form can flag a wrong path on its field instead of creating a run that
 * fails. Paths are resolved as the jobs resolve them (relative to the engine's working folder).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface PathCheck {
  path: string;
  ok: boolean;
  kind?: 'file' | 'folder';
  /** Why the path cannot be used (one line), when not ok. */
  error?: string;
}

/** Whether `p` exists and is readable (a folder: listable), and what it is. */
export function checkInputPath(p: string): PathCheck {
  if (p.trim() === '') return { path: p, ok: false, error: 'empty path' };
  const abs = path.resolve(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    return { path: p, ok: false, error: `no such file or folder: ${abs}` };
  }
  const kind = st.isDirectory() ? 'folder' : 'file';
  try {
    fs.accessSync(abs, fs.constants.R_OK | (kind === 'folder' ? fs.constants.X_OK : 0));
  } catch {
    return { path: p, ok: false, kind, error: `${kind} is not readable: ${abs}` };
  }
  return { path: p, ok: true, kind };
}
