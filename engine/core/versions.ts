/** Versions recorded in every run.json, so a result can be traced to the code that made it. */
import * as tf from '@tensorflow/tfjs-core';
import fs from 'node:fs';
import { appPath } from './app-paths.js';

const pkg = JSON.parse(fs.readFileSync(appPath('package.json'), 'utf8')) as { version: string };

export const NORMLAB_VERSION: string = pkg.version;

export function versions(): Record<string, string> {
  return { normlab: pkg.version, tfjs: tf.version_core, node: process.versions.node };
}
