/**
 * What the workbench's renderer may name on disk. The renderer (a browser page or Electron's
 * sandboxed window) is not trusted with the file system: every path it sends must lie inside the
 * open project or inside a folder the user granted (`normlab serve --allow DIR`, or a folder picked
 * in one of Electron's open dialogs). Paths are compared after resolving symlinks, so a link inside
 * the project that points elsewhere counts as elsewhere. The CLI does not go through this: its user
 * names what it reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.js';

/**
 * The real location of `p` (resolved against the working directory, as `fs` resolves it): the
 * realpath of its longest existing ancestor plus the part that does not exist yet.
 */
export function realLocation(p: string): string {
  let head = path.resolve(p);
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync.native(head), ...tail);
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return path.join(head, ...tail);
      tail.unshift(path.basename(head));
      head = parent;
    }
  }
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
  if (!roots.some((r) => inside(real, realLocation(r))))
    fail(
      'access',
      `${what}: ${p} is outside the project and the folders granted to the workbench (grant one with normlab serve --allow DIR or File › Grant Folder Access…)`,
    );
  return real;
}
