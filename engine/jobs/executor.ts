/**
 * Executors: where a study's or sweep's child runs execute. Every parent job (sweep, lns-study,
 * ln-removal, lct-study, ptq-study) takes an `executor` field:
 *
 *   executor: local                 # in this process, one child after another (the default; a
 *                                   # child its parent marks `ownProcess` in a `run-child` process)
 *   executor: { kind: local, parallel: 4 }   # up to 4 `normlab run-child` processes at once
 *   executor: { kind: slurm, partition: gpu, gpus_per_task: 1, time: "04:00:00" }
 *
 * A child is always a run folder in the project (`runs/<id>/`, its `parent` and `child_key` set);
 * `normlab run-child ID` executes one such folder in its own process, fresh or from its latest
 * checkpoint. The parallel and Slurm executors only differ in who starts that command.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { CLI_ENTRY } from '../core/app-paths.js';
import type { Run } from '../store/runs.js';
import { CANCEL } from './context.js';

/**
 * What a generated script may hold of a config value. Every value a Slurm script is written with
 * is checked here, when the config is read: sbatch reads an `#SBATCH` directive up to its line's
 * end and bash a command up to its line's end, so a line break inside a value would start a line
 * nobody wrote (in the directive block: a shell line the cluster runs).
 */
const NO_CONTROL = /^[^\p{Cc}]*$/u;
/** One shell line: no control character but the tab. */
const ONE_SHELL_LINE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;
/** A Slurm partition or account name: letters, digits, `_ . + -` (a partition list joins them with commas). */
const SLURM_NAME = '[\\w.+-]+';

const engineCommandField = z
  .string()
  .min(1)
  .regex(ONE_SHELL_LINE, 'one command line (no line breaks or control characters)')
  .optional()
  .describe(
    'command that starts the engine where children run, e.g. "node /shared/normlab/bin/normlab.js" or "node /shared/normlab.mjs" (default: this engine)',
  );

const localExecutorSchema = z
  .object({
    kind: z.literal('local'),
    parallel: z.number().int().min(1).max(64).default(1).describe('children at once: 1 = in this process, one after another; N > 1 = N child processes'),
    engine_command: engineCommandField,
  })
  .strict();

const slurmExecutorSchema = z
  .object({
    kind: z.literal('slurm'),
    partition: z
      .string()
      .regex(new RegExp(`^${SLURM_NAME}(,${SLURM_NAME})*$`), 'a Slurm partition name (letters, digits, _ . + -) or a comma-separated list of them')
      .optional()
      .describe('sbatch --partition (one partition or a comma-separated list)'),
    account: z
      .string()
      .regex(new RegExp(`^${SLURM_NAME}$`), 'a Slurm account name (letters, digits, _ . + -)')
      .optional()
      .describe('sbatch --account'),
    time: z
      .string()
      .regex(/^(\d+-)?\d+(:\d+){0,2}$/, 'a Slurm time limit such as 90, 04:00:00 or 1-00:00:00')
      .optional()
      .describe('time limit per child (sbatch --time)'),
    gpus_per_task: z.number().int().min(0).max(64).default(0).describe('GPUs per child (sbatch --gpus-per-task)'),
    cpus_per_task: z.number().int().min(1).max(1024).default(1).describe('CPU cores per child (sbatch --cpus-per-task)'),
    mem: z
      .string()
      .regex(/^\d+[KMGT]?$/, 'a Slurm memory size such as 16G or 4000M')
      .optional()
      .describe('memory per child (sbatch --mem)'),
    max_concurrent: z.number().int().min(1).optional().describe('children running at once (the %N of --array)'),
    requeue: z.boolean().default(true).describe('let Slurm requeue a preempted child (sbatch --requeue); it resumes from its checkpoint'),
    signal_seconds: z
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(60)
      .describe('SIGTERM this many seconds before the time limit, so a child marks itself interrupted'),
    extra_args: z
      .array(
        z
          .string()
          .regex(/^--[A-Za-z0-9][\w-]*(=|$)/, 'one long sbatch flag per entry: --flag or --flag=value')
          .regex(NO_CONTROL, 'one sbatch flag per entry, without line breaks or control characters'),
      )
      .default([])
      .describe('more sbatch flags, one --flag or --flag=value per entry, e.g. "--qos=long" or "--constraint=a100" (a value with spaces is quoted for sbatch)'),
    setup: z
      .array(z.string().regex(ONE_SHELL_LINE, 'one shell line per entry (no line breaks or control characters): split a multi-line setup into entries'))
      .default([])
      .describe('shell lines run before the engine on the node, one per entry, e.g. "module load cuda/12.2"'),
    engine_command: engineCommandField,
  })
  .strict();

export const executorSchema = z
  .preprocess((v) => (typeof v === 'string' ? { kind: v } : v), z.discriminatedUnion('kind', [localExecutorSchema, slurmExecutorSchema]))
  .default({ kind: 'local', parallel: 1 })
  .describe('where child runs execute: local (in-process or `parallel: N` processes) or slurm (one job array)');

export type ExecutorConfig = z.infer<typeof executorSchema>;
export type SlurmExecutorConfig = z.infer<typeof slurmExecutorSchema>;

/** The executor of a parent run's resolved config (local, in-process, when it has none). */
export function executorOf(config: Record<string, unknown>): ExecutorConfig {
  return executorSchema.parse(config.executor);
}

/** Quote one word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that starts this engine in another process: `NORMLAB_ENGINE_COMMAND`, else this
 * checkout's `bin/normlab.js` (or the portable bundle's `normlab.mjs`)
 * run by this Node (by `node` from PATH inside the Electron app, whose binary is not a Node).
 */
export function defaultEngineCommand(): string {
  if (process.env.NORMLAB_ENGINE_COMMAND) return process.env.NORMLAB_ENGINE_COMMAND;
  const entry = CLI_ENTRY; // bin/normlab.js in a checkout, normlab.mjs in the bundle (engine/core/app-paths.ts)
  const node = process.versions.electron ? 'node' : process.execPath;
  return `${shellQuote(node)} ${shellQuote(entry)}`;
}

/** The shell command line that runs one child run folder to its end. */
export function runChildCommand(engineCommand: string, projectDir: string, backend: string, childRef: string): string {
  return `${engineCommand} --project ${shellQuote(projectDir)} --backend ${shellQuote(backend)} run-child ${childRef}`;
}

/**
 * Run child run folders as `normlab run-child` processes, at most `parallel` at once; resolves
 * when every one has exited (each child records its own end state). Aborting the signal sends
 * SIGTERM to the live ones, which then mark themselves interrupted; a cancel asks each to cancel
 * (`cancel.request`), and they end cancelled. Either way each stops at a step boundary with a checkpoint.
 */
export async function runInProcesses(
  children: Run[],
  opts: { parallel: number; engineCommand: string; projectDir: string; backend: string; signal: AbortSignal },
): Promise<void> {
  const live = new Map<ReturnType<typeof spawn>, Run>();
  let next = 0;
  const stopAll = () => {
    for (const [p, run] of live) {
      if (opts.signal.reason === CANCEL) run.requestCancel();
      else p.kill('SIGTERM');
    }
  };
  opts.signal.addEventListener('abort', stopAll, { once: true });
  try {
    await new Promise<void>((resolve) => {
      const launch = () => {
        while (live.size < opts.parallel && next < children.length && !opts.signal.aborted) {
          const child = children[next++];
          const log = fs.openSync(path.join(child.dir, 'process.log'), 'a');
          const proc = spawn('/bin/sh', ['-c', `exec ${runChildCommand(opts.engineCommand, opts.projectDir, opts.backend, shellQuote(child.id))}`], {
            stdio: ['ignore', log, log],
          });
          fs.closeSync(log);
          live.set(proc, child);
          proc.once('exit', () => {
            live.delete(proc);
            launch();
          });
        }
        if (live.size === 0) resolve();
      };
      launch();
    });
  } finally {
    opts.signal.removeEventListener('abort', stopAll);
  }
}

/**
 * Thrown by a parent job whose children were handed to a batch system: the parent is left
 * queued, and the collect job (`normlab collect PARENT`) finishes it when they end.
 */
export class DeferredToScheduler extends Error {
  constructor(
    readonly submission: { array_job: string; collect_job: string; children: string[]; submitted: string },
    message: string,
  ) {
    super(message);
    this.name = 'DeferredToScheduler';
  }
}
