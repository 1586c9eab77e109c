/**
 * Benchmark entry point of latent consistency training for `normlab bench` (row `lct_step`):
 * milliseconds per training step of the `lct` job's own step function (`createLctTrainStep`),
 * on the default-size network of assets/examples/lct-study.yaml (residual MLP, width 192, depth 4,
 * mlp_ratio 2, latent 4x4x4, batch 128) with the full recipe (Cauchy loss, diffusion loss,
 * minibatch OT, adaptive c, NsLN). The latents are random normals with std 0.5 (what
 * `Autoencoder.standardize` produces), so no autoencoder is trained; the step's cost does not
 * depend on the latents' values. Timed steps start at curriculum step 0, after a short warm-up.
 */
import { Rng } from '../../data/rng.js';
import { ConsistencyNet, type ConsistencyNetConfig } from '../../models/consistency-net.js';
import { createLctTrainStep, disposeLctStep, improvementsSchema, lctOptimizer, lctTrainSchema, networkSchema, readLctStep } from './lct.js';

export interface LctStepBench {
  msPerStep: number;
  batch: number;
  /** Trainable parameters (NsLN's frozen gammas excluded). */
  params: number;
  steps: number;
  /** The loss after the last timed step (finite: the step trained). */
  loss: number;
  detail: string;
}

/** The lct-study example's network and training settings. */
export const LCT_BENCH = {
  network: { arch: 'mlp' as const, width: 192, depth: 4, mlp_ratio: 2 },
  latentShape: [4, 4, 4] as [number, number, number],
  train: { steps: 1200, batch: 128, lr: 0.001, ema: 0.999, s0: 10, s1: 640 },
  trainLatents: 4096,
};

export async function benchLctStep(opts: { quick?: boolean; steps?: number; warmup?: number } = {}): Promise<LctStepBench> {
  const steps = opts.steps ?? (opts.quick ? 3 : 20);
  const warmup = opts.warmup ?? (opts.quick ? 1 : 3);
  const improvements = improvementsSchema.parse({});
  const train = lctTrainSchema.parse(LCT_BENCH.train);
  const netCfg: ConsistencyNetConfig = {
    ...networkSchema.parse(LCT_BENCH.network),
    latent_shape: LCT_BENCH.latentShape,
    norm: improvements.nsln ? 'nsln' : 'ln',
  };
  const net = new ConsistencyNet(netCfg, 0);
  const ema = net.cloneParams();
  const opt = lctOptimizer(net, train);
  try {
    const D = net.latentDim;
    const n = LCT_BENCH.trainLatents;
    const dataRng = new Rng(1);
    const latents = Float32Array.from({ length: n * D }, () => 0.5 * dataRng.normal());
    const step = createLctTrainStep({ net, ema, opt, latents, n, improvements, train, rng: new Rng(17) });
    let k = 0;
    for (let i = 0; i < warmup; i++) disposeLctStep(step(k++));
    let loss = NaN;
    const t0 = performance.now();
    // Only the last step is read (which waits for the device).
    for (let i = 0; i < steps; i++) {
      const r = step(k++);
      if (i < steps - 1) disposeLctStep(r);
      else loss = (await readLctStep(r)).loss;
    }
    const ms = (performance.now() - t0) / steps;
    const params = net.params.trainable().reduce((a, v) => a + v.size, 0);
    return {
      msPerStep: ms,
      batch: train.batch,
      params,
      steps,
      loss,
      detail: `mlp w ${netCfg.width} depth ${netCfg.depth}, latent ${netCfg.latent_shape.join('x')}, B ${train.batch}, full recipe, ${params} params, ${steps} steps`,
    };
  } finally {
    opt.dispose();
    ema.dispose();
    net.dispose();
  }
}
