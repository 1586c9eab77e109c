/**
 * Real `normlab` processes for the fault run (engine/testing/fault-run.ts) and the kill-and-resume
 * tests: run a config to its end or to a fault point (engine/core/fault-points.ts), resume it, and
 * read which fault points a process passed.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI_ENTRY } from '../core/app-paths.js';
import { FAULT_TRACE } from '../core/fault-points.js';
import { Project, type Run } from '../store/runs.js';

export interface CliOutcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** The arguments of a `normlab` call in `project` on the wasm backend. */
const normlabArgs = (project: string, args: string[]) => [CLI_ENTRY, '--project', project, '--backend', 'wasm', ...args];

/** One `normlab` call on the wasm backend to its end (or its kill); `faultAt` sets NORMLAB_FAULT_AT. */
export function cli(project: string, args: string[], faultAt?: string): CliOutcome {
  const env = { ...process.env, NORMLAB_FAULT_AT: faultAt ?? '' };
  const t0 = Date.now();
  const r = spawnSync(process.execPath, normlabArgs(project, args), { encoding: 'utf8', timeout: 300_000, env });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, seconds: (Date.now() - t0) / 1000 };
}

/** `normlab run FILE` started in the background (no fault points); `exited` resolves when it ends. */
export function startRun(project: string, configFile: string): { kill: () => void; exited: Promise<void>; done: () => boolean } {
  const proc = spawn(process.execPath, normlabArgs(project, ['run', configFile]), {
    stdio: 'ignore',
    env: { ...process.env, NORMLAB_FAULT_AT: '' },
  });
  let ended = false;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  void exited.then(() => (ended = true));
  return { kill: () => proc.kill('SIGKILL'), exited, done: () => ended };
}

/** The project's top-level run (the one `normlab run` made), if it exists yet. */
export function topRun(project: string): Run | undefined {
  if (!fs.existsSync(path.join(project, 'runs'))) return undefined;
  return Project.open(project, false)
    .listRuns()
    .find((r) => r.record.parent === null);
}

/** One pass of a fault point: `point#n` in a run of `method`. */
export interface FaultPass {
  point: string;
  n: number;
  method: string;
  runId: string;
}

/** One line a fault point writes (engine/core/fault-points.ts). */
const PASS_LINE = new RegExp(`^${FAULT_TRACE} ([\\w-]+)#(\\d+) (\\S+) (\\S+)$`);

/** The fault points passed, from a process's stderr and the process logs of the project's child processes. */
export function faultPasses(project: string, stderr: string): FaultPass[] {
  const logs = fs.existsSync(path.join(project, 'runs'))
    ? fs.readdirSync(path.join(project, 'runs')).map((id) => path.join(project, 'runs', id, 'process.log'))
    : [];
  const text = [stderr, ...logs.filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, 'utf8'))].join('\n');
  const seen = new Set<string>();
  const out: FaultPass[] = [];
  for (const line of text.split('\n')) {
    const m = PASS_LINE.exec(line);
    if (!m) continue;
    const pass = { point: m[1], n: Number(m[2]), method: m[3], runId: m[4] };
    const key = `${pass.point}#${pass.n} ${pass.runId}`;
    if (!seen.has(key)) out.push(pass);
    seen.add(key);
  }
  return out;
}

/** The project's runs that did not complete (after a resume there must be none). */
export function unfinishedRuns(project: string): Run[] {
  return Project.open(project, false)
    .listRuns()
    .filter((r) => r.status !== 'completed');
}
