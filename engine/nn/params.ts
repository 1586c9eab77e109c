/**
 * Parameters: a model's trainable tensors, keyed by their checkpoint names (Hugging Face / timm
 * names). tfjs registers every variable under a process-wide unique name, so each ParamSet gets a
 * prefix of its own and two models with the same tensor names can live side by side.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { seededNormal } from './random.js';

let nextSetId = 0;

export class ParamSet {
  readonly vars = new Map<string, tf.Variable>();
  private readonly prefix = `p${nextSetId++}/`;

  /** Add a parameter (takes ownership of `init`). */
  add(name: string, init: tf.Tensor, trainable = true): tf.Variable {
    if (this.vars.has(name)) fail('internal', `parameter ${name} defined twice`);
    const v = tf.variable(init, trainable, this.prefix + name);
    init.dispose();
    this.vars.set(name, v);
    return v;
  }

  get(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (!v) fail('model', `model has no parameter ${name}`);
    return v;
  }

  has(name: string): boolean {
    return this.vars.has(name);
  }

  trainable(): tf.Variable[] {
    return [...this.vars.values()].filter((v) => v.trainable);
  }

  /** The checkpoint name of a variable (inverse of get). */
  nameOf(v: tf.Variable): string {
    return v.name.slice(this.prefix.length);
  }

  count(): number {
    let n = 0;
    for (const v of this.vars.values()) n += v.size;
    return n;
  }

  /** Overwrite a parameter's value, checking the shape. */
  assign(name: string, value: tf.Tensor): void {
    const v = this.get(name);
    if (value.shape.join(',') !== v.shape.join(',')) {
      fail('model', `tensor ${name} has shape [${value.shape}], the model expects [${v.shape}]`);
    }
    v.assign(value);
  }

  /** Remove and free a parameter (a streamed model's block once it has run). */
  remove(name: string): void {
    this.get(name).dispose();
    this.vars.delete(name);
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}

/** N(0, std^2) init with a deterministic per-parameter seed. */
export function normalInit(shape: number[], std: number, seed: number): tf.Tensor {
  return seededNormal(shape, 0, std, seed);
}

/** A stable 31-bit seed for parameter `name` under run seed `seed` (FNV-1a of both). */
export function paramSeed(seed: number, name: string): number {
  let h = 2166136261 ^ seed;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) % 2147483647;
}
