#!/usr/bin/env node
/**
 * Builds the workbench renderer (`renderer/` → `dist-renderer/`, Vite) when the build is missing
 * or older than its sources. `npm install` runs it (postinstall), so browser mode works in a
 * fresh clone; `normlab serve` and `npm start` call `ensureRenderer` again before serving.
 *
 * As a script: `--soft` never fails (an install must not fail because the renderer did not
 * build: it says why and exits 0); `--force` builds even when up to date.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Newest modification time (ms) of the files under `p` (a file or a folder), 0 when absent. */
function newestMtime(p) {
  if (!fs.existsSync(p)) return 0;
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of fs.readdirSync(p)) t = Math.max(t, newestMtime(path.join(p, e)));
  return t;
}

/** Why the renderer in `outDir` needs (re)building, or null when it is up to date. */
export function rendererStale(root = ROOT, outDir = path.join(root, 'dist-renderer')) {
  const index = path.join(outDir, 'index.html');
  if (!fs.existsSync(index)) return 'not built yet';
  const sources = Math.max(newestMtime(path.join(root, 'renderer')), newestMtime(path.join(root, 'vite.config.ts')));
  return sources > fs.statSync(index).mtimeMs ? 'its sources changed since the last build' : null;
}

/**
 * Build the renderer into `outDir` when it is stale (or always with `force`). Returns
 * {built, reason} on success and {built: false, error} when Vite is missing or the build failed;
 * never throws.
 */
export function ensureRenderer({ root = ROOT, outDir = path.join(root, 'dist-renderer'), force = false, log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  const reason = force ? 'forced' : rendererStale(root, outDir);
  if (!reason) return { built: false, reason: null };
  const vite = path.join(root, 'node_modules', 'vite', 'bin', 'vite.js');
  if (!fs.existsSync(vite)) return { built: false, error: 'Vite is not installed (run `npm install` without --omit=dev)' };
  log(`normlab: building the workbench renderer (${reason})…`);
  const r = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'error', '--outDir', outDir], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) {
    const why = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').filter(Boolean).slice(-3).join(' | ') || `exit ${r.status}`;
    return { built: false, error: `the renderer build failed: ${why}` };
  }
  return { built: true, reason };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const soft = process.argv.includes('--soft');
  const r = ensureRenderer({ force: process.argv.includes('--force') });
  if (r.error) {
    process.stderr.write(`normlab: ${r.error}${soft ? '; browser mode will try again on `normlab serve`' : ''}\n`);
    process.exit(soft ? 0 : 1);
  }
}
