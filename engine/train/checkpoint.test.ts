import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { AdamW } from '../nn/optim.js';
import { ParamSet } from '../nn/params.js';
import { Project } from '../store/runs.js';
import { restoreTrainingCheckpoint, saveTrainingCheckpoint } from './checkpoint.js';

beforeAll(async () => {
  await initBackend('wasm');
});

function model(seed: number, width = 3): { params: ParamSet; opt: AdamW } {
  const params = new ParamSet();
  params.add('w', tf.randomNormal([2, width], 0, 1, 'float32', seed));
  params.add('b', tf.randomNormal([width], 0, 1, 'float32', seed + 1));
  return { params, opt: new AdamW(params) };
}

describe('training checkpoints', () => {
  it('restore a fresh trainer to the saved parameters, AdamW moments and step count, and the JSON state', async () => {
    const run = Project.open(fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-'))).createRun('x', {}, { seed: 0 });
    const a = model(1);
    for (let i = 0; i < 3; i++) a.opt.step(new Map([...a.params.vars].map(([n, v]) => [n, tf.mul(v, 0.5 + i)] as const)), 1e-2);
    const dir = await saveTrainingCheckpoint(run, 3, { optimizer: a.opt, groups: { params: a.params }, state: { rng: 1234, curve: [1, 2] } });
    const b = model(9);
    const state = await restoreTrainingCheckpoint<{ rng: number; curve: number[] }>(dir, { optimizer: b.opt, groups: { params: b.params } });
    expect(state).toMatchObject({ step: 3, rng: 1234, curve: [1, 2] });
    expect(b.opt.t).toBe(3);
    for (const [n, v] of a.params.vars) expect(await b.params.get(n).data()).toEqual(await v.data());
    for (const [n, m] of a.opt.stateTensors()) expect(await b.opt.stateTensors().get(n)!.data()).toEqual(await m.data());
  });

  it('a checkpoint without its trainer state, or of another shape, is one clear error', async () => {
    const run = Project.open(fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-'))).createRun('x', {}, { seed: 0 });
    const a = model(1);
    const dir = await saveTrainingCheckpoint(run, 1, { optimizer: a.opt, groups: { params: a.params }, state: {} });
    await expect(restoreTrainingCheckpoint(dir, { optimizer: model(2, 4).opt, groups: { params: model(2, 4).params } })).rejects.toThrow(
      /^checkpoint .* optimizer tensor m.w has shape \[2,3\], the run expects \[2,4\]$/,
    );
    fs.rmSync(path.join(dir, 'trainer.json'));
    await expect(restoreTrainingCheckpoint(dir, { optimizer: a.opt })).rejects.toThrow(/has no trainer\.json: it cannot be resumed$/);
  });
});
