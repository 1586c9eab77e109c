/**
 * Job kinds: each method registers a kind (`lm-pretrain`, `lns-study`, `ln-removal`, ...) with
 * a zod schema for its config and a `run` function. A config names its kind in `method`.
 */
import { z } from 'zod';
import { fail } from '../core/errors.js';
import type { Run } from '../store/runs.js';
import type { JobContext } from './context.js';

/** Fields every job config has, whatever its kind. */
export const baseConfig = {
  name: z.string().min(1).optional().describe('a label for the run'),
  seed: z.number().int().min(0).default(0).describe('random seed for init, data order and noise'),
  tags: z.array(z.string()).default([]).describe('free tags shown in the runs table'),
};

export interface JobKind<C extends { method: string; seed: number } = { method: string; seed: number }> {
  name: string;
  title: string;
  description: string;
  schema: z.ZodType<C>;
  /** Can a killed run continue from its latest checkpoint? */
  resumable: boolean;
  /**
   * Does it run child runs through an executor (studies, sweeps)? Such a run can always be
   * resumed: it runs again, reusing its completed children and continuing the others.
   */
  parent?: boolean;
  run(ctx: JobContext, config: C): Promise<Record<string, unknown>>;
  /**
   * Extra `normlab export` formats this kind offers beyond `hf` (latest checkpoint) and `csv`
   * (metrics), e.g. ln-removal's `hf-ln-free`. Writes into `out`.
   */
  exporters?: Record<string, (run: Run, out: string) => Promise<void>>;
}

const kinds = new Map<string, JobKind>();

export function registerJobKind<C extends { method: string; seed: number }>(kind: JobKind<C>): void {
  kinds.set(kind.name, kind as unknown as JobKind);
}

export function jobKind(name: string): JobKind {
  const k = kinds.get(name);
  if (!k) fail('config', `unknown method "${name}": expected one of ${[...kinds.keys()].join(', ')}`);
  return k;
}

export function jobKinds(): JobKind[] {
  return [...kinds.values()];
}
