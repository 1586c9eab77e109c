/** Versions recorded in every run.json, so a result can be traced to the code that made it. */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pkg = require('../../package.json') as { version: string };

export const NORMLAB_VERSION: string = pkg.version;

export function versions(): Record<string, string> {
  return { normlab: pkg.version, tfjs: tf.version_core, node: process.versions.node };
}
