/**
 * What the workbench's renderer may name on disk. The renderer (a browser page or Electron's
 * sandboxed window) is not trusted with the file system: every path it sends must lie inside the
 * open project or inside a folder the user granted (`normlab serve --allow DIR`, or a folder picked
 * in one of Electron's open dialogs). Paths are compared after resolving symlinks as the kernel
 * does (component by component), so a link inside the project that points elsewhere counts as
 * elsewhere, and so does `link/..` when the link points elsewhere. The CLI does not go through this: its user
 * names what it reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.js';

/**
 * The real location of `p` as the kernel resolves it (relative to the working directory): one
 * component at a time, each symlink followed before the next component is applied, so `..` after
 * a link climbs from where the link points, not from the link. The part from the first component
 * that does not exist on is appended as text.
 */
export function realLocation(p: string): string {
  const abs = path.isAbsolute(p) ? p : `${process.cwd()}${path.sep}${p}`;
  const root = path.parse(abs).root;
  const parts = abs
    .slice(root.length)
    .split(path.sep === '\\' ? /[\\/]+/ : /\/+/)
    .filter(Boolean);
  let real = fs.realpathSync.native(root);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === '.') continue;
    if (part === '..') {
      real = path.dirname(real);
      continue;
    }
    try {
      real = fs.realpathSync.native(path.join(real, part));
    } catch {
      return path.join(real, ...parts.slice(i));
    }
  }
  return real;
}

function inside(child: string, root: string): boolean {
  const rel = path.relative(root, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Throw an `access` error unless `p` lies, after resolving symlinks, inside one of `roots`.
 * `what` names the field in the error (`data.path`). Returns the real location.
 */
export function assertAllowedPath(p: string, roots: readonly string[], what: string): string {
  const real = realLocation(p);
  // A job may also normalise the path as text first (path.resolve): that reading must be inside too.
  const asText = realLocation(path.resolve(p));
  const realRoots = roots.map((r) => realLocation(r));
  if (![real, asText].every((loc) => realRoots.some((r) => inside(loc, r))))
    fail(
      'access',
      `${what}: ${p} is outside the project and the folders granted to the workbench (grant one with normlab serve --allow DIR or File › Grant Folder Access…)`,
    );
  return real;
}
