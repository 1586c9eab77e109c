/** Versions recorded in every run.json, so a result can be traced to the code that made it. */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { appPath } from './app-paths.js';

const pkg = JSON.parse(fs.readFileSync(appPath('package.json'), 'utf8')) as { version: string };

export const NORMLAB_VERSION: string = pkg.version;

/** tfjs-core's version, read from its package.json (importing tfjs-core to read it would make `normlab --help` slow). */
let tfjsCore: string | undefined;

export function versions(): Record<string, string> {
  tfjsCore ??= (createRequire(import.meta.url)('@tensorflow/tfjs-core/package.json') as { version: string }).version;
  return { normlab: pkg.version, tfjs: tfjsCore, node: process.versions.node };
}
