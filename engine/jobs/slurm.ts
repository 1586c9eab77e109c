/**
 * The Slurm executor: a parent's unfinished children become ONE job array (task i runs
 * `normlab run-child <child i>` from the project folder on the shared filesystem), followed by a
 * collect job (`--dependency=afterany:<array>`) that runs `normlab collect PARENT` to write the
 * parent's comparison. The scripts are kept in the parent's `slurm/` folder with the tasks' logs.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.js';
import type { Run } from '../store/runs.js';
import { runChildCommand, shellQuote, type SlurmExecutorConfig } from './executor.js';

export interface SlurmScripts {
  array: string;
  collect: (arrayJob: string) => string;
}

/** `#SBATCH` lines for the options every job of a submission shares. */
function commonDirectives(cfg: SlurmExecutorConfig): string[] {
  return [...(cfg.partition ? [`--partition=${cfg.partition}`] : []), ...(cfg.account ? [`--account=${cfg.account}`] : [])].map((d) => `#SBATCH ${d}`);
}

/**
 * The job-array script for `children` and the collect script that follows it. The collect job
 * does the parent's remaining work (e.g. ptq-study's full-precision top-1) on the same backend as
 * the tasks, so when that backend is pinned to webgpu (which needs a GPU adapter; tensorflow runs on the CPU
 * where it finds none) it asks for the tasks' GPUs too.
 */
export function slurmScripts(opts: {
  cfg: SlurmExecutorConfig;
  parent: Run;
  children: Run[];
  projectDir: string;
  backend: string;
  engineCommand: string;
  logDir: string;
}): SlurmScripts {
  const { cfg, parent, children } = opts;
  const n = children.length;
  const tag = parent.id.replace(/^\d{8}-\d{6}-/, '');
  const array = [
    '#!/bin/bash',
    `#SBATCH --job-name=normlab-${tag}`,
    `#SBATCH --array=0-${n - 1}${cfg.max_concurrent ? `%${cfg.max_concurrent}` : ''}`,
    ...commonDirectives(cfg),
    ...(cfg.time ? [`#SBATCH --time=${cfg.time}`] : []),
    `#SBATCH --ntasks=1`,
    `#SBATCH --cpus-per-task=${cfg.cpus_per_task}`,
    ...(cfg.gpus_per_task > 0 ? [`#SBATCH --gpus-per-task=${cfg.gpus_per_task}`] : []),
    ...(cfg.mem ? [`#SBATCH --mem=${cfg.mem}`] : []),
    ...(cfg.requeue ? ['#SBATCH --requeue'] : []),
    ...(cfg.signal_seconds > 0 ? [`#SBATCH --signal=B:TERM@${cfg.signal_seconds}`] : []),
    `#SBATCH --output=${path.join(opts.logDir, '%A_%a.out')}`,
    ...cfg.extra_args.map((a) => `#SBATCH ${a}`),
    `# ${n} children of ${parent.id} (${parent.record.name}); task i runs children[i] from its run folder,`,
    '# fresh or, after a preemption or requeue, from its latest checkpoint.',
    'set -euo pipefail',
    ...cfg.setup,
    `children=(${children.map((c) => c.id).join(' ')})`,
    `exec ${runChildCommand(opts.engineCommand, opts.projectDir, opts.backend, '"${children[$SLURM_ARRAY_TASK_ID]}"')}`,
    '',
  ].join('\n');
  const collect = (arrayJob: string) =>
    [
      '#!/bin/bash',
      `#SBATCH --job-name=normlab-${tag}-collect`,
      `#SBATCH --dependency=afterany:${arrayJob}`,
      ...commonDirectives(cfg),
      '#SBATCH --ntasks=1',
      '#SBATCH --cpus-per-task=1',
      ...(cfg.gpus_per_task > 0 && opts.backend === 'webgpu' ? [`#SBATCH --gpus-per-task=${cfg.gpus_per_task}`] : []),
      `#SBATCH --output=${path.join(opts.logDir, 'collect-%j.out')}`,
      `# Writes ${parent.id}'s comparison once every task of array ${arrayJob} has ended.`,
      'set -euo pipefail',
      ...cfg.setup,
      `exec ${opts.engineCommand} --project ${shellQuote(opts.projectDir)} --backend ${shellQuote(opts.backend)} collect ${shellQuote(parent.id)}`,
      '',
    ].join('\n');
  return { array, collect };
}

/** Run a Slurm client command; one clear line if it is missing or refuses. */
function slurmCommand(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') fail('state', `executor slurm: ${cmd} is not on PATH (submit from a Slurm login node)`);
    const why = (e.stderr ?? e.message).trim().split('\n')[0];
    return fail('state', `${cmd} failed: ${why}`);
  }
}

/** Submit a batch script file; returns the job id (`sbatch --parsable` prints `id[;cluster]`). */
function sbatch(script: string): string {
  return slurmCommand('sbatch', ['--parsable', script]).trim().split(';')[0];
}

/** Submit the children's array and the collect job; returns their job ids. */
export function submitToSlurm(opts: Parameters<typeof slurmScripts>[0]): { array_job: string; collect_job: string } {
  fs.mkdirSync(opts.logDir, { recursive: true });
  const scripts = slurmScripts(opts);
  const stamp = new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15);
  const arrayFile = path.join(opts.logDir, `array-${stamp}.sbatch`);
  fs.writeFileSync(arrayFile, scripts.array, { mode: 0o755 });
  const arrayJob = sbatch(arrayFile);
  const collectFile = path.join(opts.logDir, `collect-${stamp}.sbatch`);
  fs.writeFileSync(collectFile, scripts.collect(arrayJob), { mode: 0o755 });
  let collectJob: string;
  try {
    collectJob = sbatch(collectFile);
  } catch (err) {
    slurmCommand('scancel', [arrayJob]);
    throw err;
  }
  for (const [i, child] of opts.children.entries()) child.update({ slurm_task: `${arrayJob}_${i}` });
  return { array_job: arrayJob, collect_job: collectJob };
}

/**
 * Slurm's view of jobs still known to the controller: `123_4` (an array task) or `124` -> state
 * (PENDING, RUNNING, COMPLETING, ...). Ended jobs drop out of squeue; `sacct` adds them where
 * accounting is enabled. Empty where no Slurm client is installed.
 */
export function slurmStates(jobIds: string[]): Map<string, string> {
  const states = new Map<string, string>();
  if (jobIds.length === 0) return states;
  const read = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 15_000 });
    } catch {
      return '';
    }
  };
  for (const line of read('sacct', ['-n', '-X', '-P', '-j', jobIds.join(','), '-o', 'JobID,State']).split('\n')) {
    const [id, state] = line.split('|');
    if (id && state) states.set(id.trim(), state.trim().split(' ')[0]);
  }
  for (const line of read('squeue', ['-h', '-r', '-j', jobIds.join(','), '-o', '%i|%T']).split('\n')) {
    const [id, state] = line.split('|');
    if (id && state) states.set(id.trim(), state.trim());
  }
  return states;
}

/** Cancel Slurm jobs (ended ones are ignored). */
export function cancelSlurmJobs(jobIds: string[]): void {
  if (jobIds.length) slurmCommand('scancel', jobIds);
}
