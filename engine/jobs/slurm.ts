/**
 * The Slurm executor: a parent's unfinished children become ONE job array (task i runs
 * `normlab run-child <child i>` from the project folder on the shared filesystem), followed by a
 * collect job (`--dependency=afterany:<array>`) that runs `normlab collect PARENT` to write the
 * parent's comparison. The scripts are kept in the parent's `slurm/` folder with the tasks' logs.
 *
 * Nothing goes into a script raw: the config's Slurm fields are checked against their grammar when
 * the config is read (engine/jobs/executor.ts), paths and other values are quoted for sbatch's
 * directive reader or for bash, and the run's name (free text) has its control characters blanked
 * in the comment it appears in. `setup` lines are the one place a user writes shell on purpose.
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
 * A value as one `#SBATCH` argument. sbatch reads a directive's arguments as words: whitespace
 * splits them, an unquoted `#` ends the line, and quotes group (and are dropped) with a backslash
 * escaping the next character. So a value that is not a plain word goes in double quotes with `\`
 * and `"` escaped. A line break cannot be inside a directive at all: such a value fails.
 */
function directiveWord(what: string, value: string): string {
  if (/\p{Cc}/u.test(value)) fail('config', `${what} holds a line break or control character: it cannot be written into an #SBATCH line`);
  return /^[\w@%+=:,./-]*$/.test(value) ? value : `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

/** An `extra_args` entry (`--flag` or `--flag=value`, checked by the schema) with its value quoted for sbatch. */
function extraDirective(arg: string): string {
  const eq = arg.indexOf('=');
  return eq < 0 ? arg : `${arg.slice(0, eq + 1)}${directiveWord(`executor.extra_args entry ${arg.slice(0, eq)}`, arg.slice(eq + 1))}`;
}

/**
 * `--output=` for a log file `name` (a Slurm filename pattern: `%A`, `%a`, `%j`) in `dir`. In
 * the folder's own path `%` is doubled (Slurm's literal `%`); a backslash would make Slurm drop
 * every backslash and expand no pattern, so such a folder fails.
 */
function outputDirective(dir: string, name: string): string {
  if (dir.includes('\\'))
    fail('config', `the log folder ${JSON.stringify(dir)} holds a backslash, which sbatch --output does not keep: use a project path without one`);
  return `--output=${directiveWord(`the log folder ${JSON.stringify(dir)}`, path.join(dir.replace(/%/g, '%%'), name))}`;
}

/** Free text (a run's name; its id, a folder name) for a `#` comment line: control characters (a line break would end the comment) become spaces. */
function commentText(text: string): string {
  return text.replace(/\p{Cc}/gu, ' ');
}

/** A command line for the last line of a script; a line break would make a second one. */
function oneLine(what: string, command: string): string {
  if (/[\n\r]/.test(command)) fail('config', `${what} holds a line break: it must be one command line`);
  return command;
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
  // The job name: the parent id without its time stamp, as a plain word.
  const tag = parent.id.replace(/^\d{8}-\d{6}-/, '').replace(/[^\w.-]/g, '_');
  const engine = oneLine('the engine command', opts.engineCommand);
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
    `#SBATCH ${outputDirective(opts.logDir, '%A_%a.out')}`,
    ...cfg.extra_args.map((a) => `#SBATCH ${extraDirective(a)}`),
    `# ${n} children of ${commentText(parent.id)} (${commentText(parent.record.name)}); task i runs children[i] from its run folder,`,
    '# fresh or, after a preemption or requeue, from its latest checkpoint.',
    'set -euo pipefail',
    ...cfg.setup,
    `children=(${children.map((c) => shellQuote(c.id)).join(' ')})`,
    `exec ${runChildCommand(engine, opts.projectDir, opts.backend, '"${children[$SLURM_ARRAY_TASK_ID]}"')}`,
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
      `#SBATCH ${outputDirective(opts.logDir, 'collect-%j.out')}`,
      `# Writes ${commentText(parent.id)}'s comparison once every task of array ${arrayJob} has ended.`,
      'set -euo pipefail',
      ...cfg.setup,
      `exec ${engine} --project ${shellQuote(opts.projectDir)} --backend ${shellQuote(opts.backend)} collect ${shellQuote(parent.id)}`,
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

/** Submit a batch script file; returns the job id (`sbatch --parsable` prints `id[;cluster]`), a number (it goes into the collect script). */
function sbatch(script: string): string {
  const out = slurmCommand('sbatch', ['--parsable', script]).trim();
  const id = out.split(';')[0];
  if (!/^\d+$/.test(id)) fail('state', `sbatch printed no job id (it printed ${JSON.stringify(out.slice(0, 80))})`);
  return id;
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
