/**
 * Where NormLab's own files are at run time. From a source checkout (tsx, vitest, Electron) that
 * is the repository; in the portable bundle (engine/bundle/, `npm run bundle`) every module is
 * inlined into one `normlab.mjs`, so paths relative to a module's own file no longer hold, and the
 * bundle folder, laid out like the repository for these files, takes the repository's place.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Replaced by `true` when esbuild builds the bundle (engine/bundle/build.ts); undeclared otherwise. */
declare const NORMLAB_BUNDLE: boolean | undefined;

/** Whether this code runs from the portable bundle. */
export const IN_BUNDLE: boolean = typeof NORMLAB_BUNDLE !== 'undefined' && NORMLAB_BUNDLE === true;

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository root, or the bundle folder (the directory of normlab.mjs). */
export const APP_ROOT: string = IN_BUNDLE ? here : path.resolve(here, '..', '..');

/** A path under APP_ROOT, e.g. appPath('assets', 'examples'). */
export function appPath(...parts: string[]): string {
  return path.join(APP_ROOT, ...parts);
}

/** The script that runs the `normlab` command (for child processes of the same engine). */
export const CLI_ENTRY: string = IN_BUNDLE ? appPath('normlab.mjs') : appPath('bin', 'normlab.js');
