/**
 * The activation functions Hugging Face configs name (`hidden_act`, `hidden_activation`,
 * `activation_function`), as transformers' ACT2FN computes them. A name not listed here is a
 * one-line error when the config is read, never a silent substitute.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { gelu, silu } from '../nn/ops.js';

const ACTIVATIONS = {
  /** Exact GELU, x Φ(x) (erf form). */
  gelu: (x: tf.Tensor) => gelu(x, 'erf'),
  /** GELU's tanh approximation (GPT-2's); gelu_fast, gelu_pytorch_tanh and gelu_accurate are the same formula. */
  gelu_new: (x: tf.Tensor) => gelu(x, 'tanh'),
  gelu_fast: (x: tf.Tensor) => gelu(x, 'tanh'),
  gelu_pytorch_tanh: (x: tf.Tensor) => gelu(x, 'tanh'),
  gelu_accurate: (x: tf.Tensor) => gelu(x, 'tanh'),
  /** x sigmoid(1.702 x) (CLIP's). */
  quick_gelu: (x: tf.Tensor) => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))),
  relu: (x: tf.Tensor) => tf.relu(x),
  silu: (x: tf.Tensor) => silu(x),
  swish: (x: tf.Tensor) => silu(x),
  tanh: (x: tf.Tensor) => tf.tanh(x),
  sigmoid: (x: tf.Tensor) => tf.sigmoid(x),
  linear: (x: tf.Tensor) => x,
} as const;

export type ActivationName = keyof typeof ACTIVATIONS;

export const ACTIVATION_NAMES = Object.keys(ACTIVATIONS) as ActivationName[];

/** Check an activation name from a config.json field; `where` names the field. */
export function activationName(name: unknown, where: string): ActivationName {
  if (typeof name === 'string' && Object.prototype.hasOwnProperty.call(ACTIVATIONS, name)) return name as ActivationName;
  return fail('config', `${where}: activation ${JSON.stringify(name)} is not one NormLab computes (${ACTIVATION_NAMES.join(', ')})`);
}

/** Apply a named activation elementwise. */
export function activate(name: ActivationName, x: tf.Tensor): tf.Tensor {
  return ACTIVATIONS[name](x);
}
