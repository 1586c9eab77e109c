/**
 * The feature network for NormLab's FID: a small MLP classifier trained on the same image set
 * (784 -> 256 -> 128 -> classes for MNIST). Its 128-d penultimate activations are the features of
 * "FID (MNIST-classifier features)"; its argmax gives the class histogram of generated samples.
 * Job kind `image-classifier` trains one and saves it as a model folder.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { Rng } from '../../data/rng.js';
import { loadModelDir, saveModelDir } from '../../io/model-dir.js';
import type { HostTensor } from '../../io/safetensors.js';
import { fromTf, toTf } from '../../io/tensors.js';
import { baseConfig, registerJobKind, SIZE_LIMITS } from '../../jobs/registry.js';
import { crossEntropy, linear, silu } from '../../nn/ops.js';
import { normalInit, ParamSet, paramSeed } from '../../nn/params.js';
import { gatherRows, imageDataSchema, loadReferenceImages, loadTrainImages } from './data.js';
import { gradAccumField } from '../../train/accumulate.js';
import { checkpointEveryField } from '../../train/checkpoint.js';
import { fit } from './fit.js';
import { wilson } from '../../stats/stats.js';

export interface ClassifierConfig {
  image_shape: [number, number, number];
  hidden: [number, number]; // the second is the feature width
  classes: number;
  class_names: string[];
  data_name: string; // "MNIST" or the folder's name, for the FID label
}

export class ImageClassifier {
  readonly params = new ParamSet();
  readonly inDim: number;
  constructor(
    readonly config: ClassifierConfig,
    seed = 0,
  ) {
    this.inDim = config.image_shape.reduce((a, b) => a * b, 1);
    const dims = [this.inDim, config.hidden[0], config.hidden[1], config.classes];
    const names = ['fc1', 'fc2', 'head'];
    names.forEach((n, i) => {
      this.params.add(`${n}.weight`, normalInit([dims[i], dims[i + 1]], 1 / Math.sqrt(dims[i]), paramSeed(seed, n)));
      this.params.add(`${n}.bias`, tf.zeros([dims[i + 1]]));
    });
  }
  private lin(x: tf.Tensor, n: string): tf.Tensor {
    return linear(x, this.params.get(`${n}.weight`), this.params.get(`${n}.bias`));
  }
  /** x (B, H*W*C) in [0, 1] -> penultimate features (B, hidden[1]). */
  features(x: tf.Tensor): tf.Tensor2D {
    return silu(this.lin(silu(this.lin(tf.sub(tf.mul(x, 2), 1), 'fc1')), 'fc2')) as tf.Tensor2D;
  }
  logits(x: tf.Tensor): tf.Tensor2D {
    return this.lin(this.features(x), 'head') as tf.Tensor2D;
  }
  /** Features and predicted classes of n images, in batches. */
  async embed(images: Float32Array, n: number, batch = 500): Promise<{ feats: Float32Array; preds: Int32Array }> {
    const F = this.config.hidden[1];
    const feats = new Float32Array(n * F);
    const preds = new Int32Array(n);
    for (let s = 0; s < n; s += batch) {
      const e = Math.min(n, s + batch);
      const [f, p] = tf.tidy(() => {
        const x = tf.tensor2d(images.subarray(s * this.inDim, e * this.inDim), [e - s, this.inDim]);
        const h = this.features(x);
        return [h, tf.argMax(this.lin(h, 'head'), 1)];
      });
      const [fv, pv] = await Promise.all([f.data(), p.data()]);
      feats.set(fv as Float32Array, s * F);
      preds.set(pv as Int32Array, s);
      f.dispose();
      p.dispose();
    }
    return { feats, preds };
  }
  async save(dir: string): Promise<void> {
    const t = new Map<string, HostTensor>();
    for (const [n, v] of this.params.vars) t.set(n, await fromTf(v));
    await saveModelDir(dir, { normlab_model: 'image-classifier', ...this.config }, t);
  }
  static async load(dir: string): Promise<ImageClassifier> {
    const { config, tensors } = await loadModelDir(dir);
    if (config.normlab_model !== 'image-classifier')
      fail('model', `${dir} is not an image-classifier model folder (normlab_model is ${JSON.stringify(config.normlab_model)})`);
    const c = new ImageClassifier(config as unknown as ClassifierConfig);
    for (const n of c.params.vars.keys()) {
      const h = tensors.get(n);
      if (!h) fail('model', `classifier checkpoint ${dir} lacks tensor ${n}`);
      const tt = toTf(h);
      c.params.assign(n, tt);
      tt.dispose();
    }
    return c;
  }
  dispose(): void {
    this.params.dispose();
  }
}

export const classifierSchema = z
  .object({
    method: z.literal('image-classifier'),
    ...baseConfig,
    data: imageDataSchema.default(imageDataSchema.parse({})),
    hidden: z
      .tuple([z.number().int().positive(), z.number().int().positive()])
      .default([256, 128])
      .describe('hidden widths; the second is the FID feature width'),
    steps: z.number().int().positive().default(300).describe('AdamW steps'),
    batch: z.number().int().positive().max(SIZE_LIMITS.batch).default(128).describe('images per micro-batch (per step without grad_accum)'),
    grad_accum: gradAccumField,
    lr: z.number().positive().default(2e-3).describe('peak learning rate (warmup + cosine)'),
    checkpoint_every: checkpointEveryField(200),
  })
  .strict();
export type ClassifierJobConfig = z.infer<typeof classifierSchema>;

registerJobKind({
  name: 'image-classifier',
  title: 'Image classifier (FID features)',
  description: 'Train the small MLP classifier whose penultimate features NormLab uses for FID and class histograms.',
  schema: classifierSchema,
  resumable: true,
  async run(ctx, cfg) {
    const train = await loadTrainImages(cfg.data, cfg.seed);
    if (train.classes < 2 || train.labels.some((l) => l < 0)) {
      fail(
        'data',
        `the classifier for FID features needs a labelled image set (dir/<class>/*.png with 2+ classes); ${cfg.data.path ?? 'the data'} has ${train.classes} classes`,
      );
    }
    const ref = await loadReferenceImages(cfg.data, cfg.seed);
    const dim = train.height * train.width * train.channels;
    const model = new ImageClassifier(
      {
        image_shape: [train.height, train.width, train.channels],
        hidden: cfg.hidden,
        classes: train.classes,
        class_names: train.classNames,
        data_name: cfg.data.source === 'mnist' ? 'MNIST' : path.basename(path.resolve(cfg.data.path ?? 'images')),
      },
      cfg.seed,
    );
    try {
      const rng = new Rng(cfg.seed * 7919 + 11);
      const { modelDir } = await fit(
        ctx,
        model.params,
        {
          rng,
          draw: (_, rows) => {
            const idx = Array.from({ length: rows }, () => rng.int(train.n));
            return { x: gatherRows(train.images, dim, idx), y: Int32Array.from(idx, (i) => train.labels[i]) };
          },
          loss: ({ x, y }, mb) => {
            const xs = tf.tensor2d(x.subarray(mb.start * dim, (mb.start + mb.rows) * dim), [mb.rows, dim]);
            return { loss: crossEntropy(model.logits(xs), tf.tensor1d(y.subarray(mb.start, mb.start + mb.rows), 'int32')) };
          },
        },
        {
          steps: cfg.steps,
          lr: cfg.lr,
          phase: 'classifier',
          batch: cfg.batch,
          gradAccum: cfg.grad_accum,
          checkpointEvery: cfg.checkpoint_every,
          saveModel: (d) => model.save(d),
        },
      );
      const { preds } = await model.embed(ref.images, ref.n);
      let correct = 0;
      for (let i = 0; i < ref.n; i++) if (preds[i] === ref.labels[i]) correct++;
      const accuracy = correct / ref.n;
      ctx.metric({ step: cfg.steps, ref_accuracy: accuracy });
      ctx.log(`classifier accuracy on ${ref.n} reference images: ${(100 * accuracy).toFixed(2)}%`);
      return {
        key_result: {
          label: 'reference accuracy',
          value: accuracy,
          ci95: wilson(correct, ref.n),
          interval: `Wilson interval of the accuracy proportion, ${ref.n} reference images`,
          unit: 'fraction',
        },
        ref_accuracy: accuracy,
        ref_images: ref.n,
        model_dir: modelDir,
      };
    } finally {
      model.dispose();
    }
  },
});
