/**
 * Training checkpoints and resume, shared by every trainer. A checkpoint is a folder
 * `checkpoints/step-N/` (written into a temp folder and renamed, then named in `latest.json`; see
 * `Run.saveCheckpoint`) holding everything a resumed run needs to continue exactly as the
 * uninterrupted run would have:
 *
 * - the trainer's model folder for users, when it writes one (config.json + model.safetensors);
 * - `optimizer.safetensors`: the AdamW moments (`m.<name>`, `v.<name>`);
 * - `<group>.safetensors` for each named tensor group the trainer adds (`params` where the model
 *   folder does not hold the raw parameters, `ema` for EMA weights, ...);
 * - `trainer.json`: `{ step, optimizerSteps, ...state }`: optimizer steps done, AdamW's bias
 *   correction count and the trainer's own JSON state (RNG states, data position, method state).
 *
 * A trainer ends every step with `endOfStep`, which saves with `saveTrainingCheckpoint` every
 * `checkpoint_every` steps and also at the first step boundary after a SIGTERM / SIGINT (so a
 * preempted or requeued run loses no steps); when `ctx.resumeFrom` is set it restores with
 * `restoreTrainingCheckpoint` before its first step; the job kind then declares `resumable: true`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { fail } from '../core/errors.js';
import { faultPoint } from '../core/fault-points.js';
import { readJson, writeJsonAtomic } from '../io/atomic.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors-file.js';
import type { HostTensor } from '../io/safetensors.js';
import { fromTf, toTf } from '../io/tensors.js';
import { stopRequested, type JobContext } from '../jobs/context.js';
import type { AdamW } from '../nn/optim.js';
import { ParamSet } from '../nn/params.js';
import type { Run } from '../store/runs.js';

/** The `checkpoint_every` config field of the trainers that did not have one. */
export function checkpointEveryField(defaultSteps: number) {
  return z
    .number()
    .int()
    .min(1)
    .default(defaultSteps)
    .describe('optimizer steps between checkpoints (a killed run resumes from the latest: `normlab resume RUN`)');
}

/** Is `step` (optimizer steps done) a checkpoint step: every `every` steps and the last one. */
export function isCheckpointStep(step: number, every: number, total: number): boolean {
  return step % every === 0 || step === total;
}

/**
 * The end of a training step (`step` optimizer steps done): yield to the event loop (so a signal
 * that arrived during the step is seen), save a checkpoint when this is a checkpoint step (`due`)
 * or the run was told to stop (SIGTERM / SIGINT: preemption, a time limit; or a user's cancel),
 * then end the run there (`ctx.tick` throws: interrupted, or cancelled). The checkpoint is written into a temp
 * folder and renamed (`Run.saveCheckpoint`), so a kill during the write leaves the previous one.
 * `last`: the trainer's last step (the fault points after-last-step and after-final-checkpoint).
 */
export async function endOfStep(ctx: Pick<JobContext, 'signal' | 'tick' | 'run'>, due: boolean, save: () => Promise<unknown>, last = false): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  if (last) faultPoint('after-last-step', ctx.run);
  if (due || stopRequested(ctx.signal)) await save();
  if (last) faultPoint('after-final-checkpoint', ctx.run);
  // No yield between the check and here: a stop that arrives later is seen at the next step's
  // boundary, never between this step's check and its end (which would end it without a checkpoint).
  if (ctx.signal.aborted) await ctx.tick();
}

/**
 * A yield for a pass between a trainer's steps and its next checkpoint (an epoch-end
 * evaluation): does not throw when the run was told to stop (a signal or a cancel), so that the
 * pass finishes and the checkpoint after it is written before the run ends.
 */
export async function yieldUntilCheckpoint(ctx: Pick<JobContext, 'signal' | 'tick'>): Promise<void> {
  if (stopRequested(ctx.signal)) await new Promise<void>((r) => setImmediate(r));
  else await ctx.tick();
}

/** Tensors a checkpoint stores as one file: a model's parameters or any named tensors. */
export type TensorGroup = ParamSet | Map<string, tf.Tensor>;

function entries(g: TensorGroup): [string, tf.Tensor][] {
  return g instanceof ParamSet ? [...g.vars] : [...g];
}

export interface CheckpointParts {
  /** Writes the user-facing model folder into the checkpoint folder. */
  model?: (dir: string) => Promise<void>;
  optimizer: AdamW;
  /** Extra tensor groups, each saved as `<name>.safetensors`. */
  groups?: Record<string, TensorGroup>;
  /** The trainer's JSON state (RNG / data position, method state, results so far). */
  state: Record<string, unknown>;
  /** For a phase of a run that counts its own steps: the metric fields a resume from here supersedes. */
  scope?: Record<string, string>;
}

const TRAINER_FILE = 'trainer.json';
const OPTIMIZER_FILE = 'optimizer.safetensors';

async function writeGroup(file: string, tensors: [string, tf.Tensor][]): Promise<void> {
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of tensors) out[name] = await fromTf(t);
  await writeSafetensors(file, out);
}

/** Save a checkpoint for `step` optimizer steps done; returns its folder. */
export async function saveTrainingCheckpoint(run: Run, step: number, parts: CheckpointParts): Promise<string> {
  return run.saveCheckpoint(
    step,
    async (dir) => {
      await parts.model?.(dir);
      await writeGroup(path.join(dir, OPTIMIZER_FILE), [...parts.optimizer.stateTensors()]);
      for (const [name, g] of Object.entries(parts.groups ?? {})) await writeGroup(path.join(dir, `${name}.safetensors`), entries(g));
      await writeJsonAtomic(path.join(dir, TRAINER_FILE), { ...parts.state, step, optimizerSteps: parts.optimizer.t });
    },
    2,
    parts.scope,
  );
}

async function readGroup(dir: string, name: string): Promise<Map<string, HostTensor>> {
  const file = path.join(dir, `${name}.safetensors`);
  if (!fs.existsSync(file)) fail('io', `checkpoint ${dir} has no ${name}.safetensors: it cannot be resumed`);
  return (await readSafetensors(file)).tensors;
}

/** Overwrite every tensor of `group` (variables) from `saved`, checking names and shapes. */
function assignGroup(group: TensorGroup, saved: Map<string, HostTensor>, what: string): void {
  for (const [name, v] of entries(group)) {
    const h = saved.get(name);
    if (!h) fail('model', `checkpoint ${what} lacks tensor ${name}`);
    if (h.shape.join(',') !== v.shape.join(',')) fail('model', `checkpoint ${what} tensor ${name} has shape [${h.shape}], the run expects [${v.shape}]`);
    if (!(v instanceof tf.Variable)) fail('internal', `checkpoint group ${what}: ${name} is not a variable`);
    const t = toTf(h);
    v.assign(t);
    t.dispose();
  }
}

/** The JSON state of a checkpoint (for what a trainer needs before it builds its model). */
export async function readTrainerState<S extends Record<string, unknown>>(dir: string): Promise<S & { step: number; optimizerSteps: number }> {
  const stateFile = path.join(dir, TRAINER_FILE);
  if (!fs.existsSync(stateFile)) fail('io', `checkpoint ${dir} has no ${TRAINER_FILE}: it cannot be resumed`);
  const state = (await readJson(stateFile, 'trainer state')) as S & { step: number; optimizerSteps: number };
  if (!Number.isInteger(state.step) || !Number.isInteger(state.optimizerSteps)) fail('io', `${stateFile} has no valid step / optimizerSteps`);
  return state;
}

/**
 * Restore a checkpoint into a freshly built trainer: the optimizer moments and step count, each
 * named tensor group, and return the trainer's JSON state with the step it was taken at.
 */
export async function restoreTrainingCheckpoint<S extends Record<string, unknown>>(
  dir: string,
  parts: { optimizer: AdamW; groups?: Record<string, TensorGroup> },
): Promise<S & { step: number }> {
  const state = await readTrainerState<S>(dir);
  assignGroup(parts.optimizer.stateTensors(), await readGroup(dir, 'optimizer'), `${dir} optimizer`);
  parts.optimizer.t = state.optimizerSteps;
  for (const [name, g] of Object.entries(parts.groups ?? {})) assignGroup(g, await readGroup(dir, name), `${dir} ${name}`);
  return state;
}
