/** Conversion between safetensors tensors (typed arrays) and tfjs tensors. */
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor as Tensor } from './safetensors.js';

/** A safetensors tensor as a float32 (or int32) tfjs tensor. */
export function toTf(t: Tensor): tf.Tensor {
  if (t.data instanceof Int32Array) return tf.tensor(t.data, t.shape, 'int32');
  return tf.tensor(t.data instanceof Float32Array ? t.data : Float32Array.from(t.data), t.shape, 'float32');
}

/** A tfjs tensor as an F32 (or I32) safetensors tensor. */
export async function fromTf(t: tf.Tensor): Promise<Tensor> {
  if (t.dtype === 'int32') return { dtype: 'I32', shape: [...t.shape], data: (await t.data()) as Int32Array };
  return { dtype: 'F32', shape: [...t.shape], data: (await t.data()) as Float32Array };
}

/** `fromTf` with an asynchronous read (works on every backend, webgpu included). */
export async function fromTfAsync(t: tf.Tensor): Promise<Tensor> {
  if (t.dtype === 'int32') return { dtype: 'I32', shape: [...t.shape], data: (await t.data()) as Int32Array };
  return { dtype: 'F32', shape: [...t.shape], data: (await t.data()) as Float32Array };
}
