/**
 * The fault run (issue 23): real `normlab` processes of every job kind that writes checkpoints or
 * child runs (engine/testing/fault-jobs.ts) killed with SIGKILL, at the phase boundaries their
 * fault points mark (engine/core/fault-points.ts) and at random moments; projects on full disks;
 * races on one stale lock. Every killed run is resumed with `normlab resume` and its results
 * (summary and metric lines, its children's too; engine/testing/run-results.ts) compared, exactly,
 * with the same config run uninterrupted. Prints the counts per job kind and phase, and the wrong
 * results, unresumable runs and crashes (a stack trace or an `internal` error), which must all be 0.
 *
 *   node --import tsx engine/testing/fault-run.ts [--kinds a,b] [--every-pass] [--kills N] [--seed N]
 *                                                 [--disk-levels N] [--races N] [--keep]
 *
 * A job kind passes each fault point once or more (one pass per child that trains, e.g.); by
 * default one pass of each point and phase is killed (a phase: a method, or a child of its
 * parent's own kind such as an LN-removal arm), drawn with `--seed` (printed, so a run can be
 * repeated); `--every-pass` kills every pass. `--kills N`: random kills per job kind; `--keep`
 * keeps the projects. Full disks are tmpfs mounts (Linux, root); without the right to mount, that
 * part is skipped and says so.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../data/rng.js';
import { Project, type Run } from '../store/runs.js';
import { cli, faultPasses, startRun, topRun, unfinishedRuns, type FaultPass } from './cli-runs.js';
import { faultJobs, tinyLmPretrain } from './fault-jobs.js';
import { raceForStaleLock } from './lock-race.js';
import { resultDiffs, runResult, type RunResult } from './run-results.js';

const argv = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const KILLS = arg('kills', 1);
const DISK_LEVELS = arg('disk-levels', 17);
const RACES = arg('races', 5);
const SEED = arg('seed', Date.now() % 100_000);
const EVERY_PASS = argv.includes('--every-pass');
const kindsArg = argv.indexOf('--kinds') >= 0 ? argv[argv.indexOf('--kinds') + 1].split(',') : null;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-fault-run-'));
const counts = new Map<string, number>();
const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
const problems: string[] = [];

/** The draws (passes, random moments): `--seed` repeats them. */
const rng = new Rng(`fault-run:${SEED}`);
const random = () => rng.next();

function writeConfig(name: string, config: unknown): string {
  const file = path.join(root, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

/** A crash: a stack trace or an `internal` error instead of one line. */
function crashed(stderr: string): boolean {
  return /^\s+at .+:\d+:\d+\)?$/m.test(stderr) || /internal error|TypeError|ReferenceError|Unhandled/.test(stderr);
}

const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';

let projects = 0;
const freshProject = (kind: string) => path.join(root, `${kind}-${++projects}`);

interface Reference {
  result: RunResult;
  passes: FaultPass[];
  seconds: number;
  /** Who each pass's run is: its method and, for a child, its key. */
  roles: Map<string, string>;
  /** The phase each run is: its method, or its role for a child of its parent's own kind (an LN-removal arm). */
  phases: Map<string, string>;
}

/** The uninterrupted run of a config, with the fault points it passes. */
function reference(kind: string, configFile: string): Reference {
  const project = freshProject(`${kind}-reference`);
  const r = cli(project, ['run', configFile], 'trace');
  if (r.status !== 0 || crashed(r.stderr)) throw new Error(`the reference ${kind} run failed: ${lastLine(r.stderr)}`);
  const store = Project.open(project, false);
  const runs = store.listRuns();
  const roles = new Map(runs.map((run) => [run.id, role(run)]));
  const ownKind = (run: Run) => runs.find((p) => p.id === run.record.parent)?.record.method === run.record.method;
  const phases = new Map(runs.map((run) => [run.id, ownKind(run) ? role(run) : run.record.method]));
  return { result: runResult(store, topRun(project)!), passes: faultPasses(project, r.stderr), seconds: r.seconds, roles, phases };
}

/** A run's method and, for a child, its key: "ln-removal (remove)". */
function role(run: Run): string {
  return run.record.child_key ? `${run.record.method} (${run.record.child_key})` : run.record.method;
}

/** Resume the killed run to its end and compare its results with the reference. */
function resumeAndCheck(project: string, what: string, ref: Reference): void {
  const run = topRun(project);
  if (!run) return; // killed before its run existed: nothing to resume
  const r = cli(project, ['resume', run.id]);
  if (crashed(r.stderr)) problems.push(`crash: resume of ${what}: ${r.stderr.slice(-400)}`);
  const store = Project.open(project, false);
  const after = store.run(run.id);
  if (r.status !== 0 && !(after.status === 'completed' && /nothing to resume/.test(r.stderr))) {
    problems.push(`unresumable: ${what}: ${lastLine(r.stderr)}`);
    return;
  }
  const left = unfinishedRuns(project);
  if (left.length) problems.push(`unresumable: ${what}: ${left.map((l) => `${role(l)} ${l.status}`).join(', ')} after the resume`);
  const diffs = resultDiffs(runResult(store, after), ref.result);
  if (diffs.length) problems.push(`wrong result: ${what}: ${diffs.length} values differ, e.g. ${diffs.slice(0, 3).join('; ')}`);
}

/**
 * The passes to kill: every one, or one drawn per fault point and phase (see `Reference.phases`).
 * Passes of one number in several processes (the children of a parallel executor) are one kill:
 * each process counts its own.
 */
function passesToKill(all: FaultPass[], ref: Reference): FaultPass[] {
  const passes = all.filter((p, i) => all.findIndex((q) => q.point === p.point && q.n === p.n) === i);
  if (EVERY_PASS) return passes;
  const groups = new Map<string, FaultPass[]>();
  for (const p of passes) {
    const key = `${p.point} ${ref.phases.get(p.runId) ?? p.method}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  return [...groups.values()].map((g) => g[Math.floor(random() * g.length)]);
}

/** Kill a run of the config at one pass of a fault point (in every process that passes it), resume it, compare. */
function killAtPass(kind: string, configFile: string, pass: FaultPass, ref: Reference): void {
  const project = freshProject(kind);
  const target = `${pass.point}#${pass.n}`;
  const where = ref.passes
    .filter((p) => p.point === pass.point && p.n === pass.n)
    .map((p) => ref.roles.get(p.runId) ?? p.method)
    .join(' + ');
  const r = cli(project, ['run', configFile], target);
  // A pass in a child process (a parallel executor's `run-child`) kills that process, not this one.
  const killed = r.signal === 'SIGKILL' || faultPasses(project, '').some((p) => p.point === pass.point && p.n === pass.n);
  const what = `${kind} killed ${target} in ${where}`;
  if (!killed) {
    problems.push(`not reached: ${what}: the run ended ${r.status} without passing it: ${lastLine(r.stderr)}`);
    return;
  }
  if (crashed(r.stderr)) problems.push(`crash: ${what}: ${r.stderr.slice(-400)}`);
  bump(`${kind.padEnd(12)} ${pass.point} in ${where}`);
  resumeAndCheck(project, what, ref);
}

/** What a kill interrupted, read from the store: the innermost run that was running and how far it was. */
function phaseAfterKill(project: string): string {
  const top = topRun(project);
  if (!top) return 'before its run existed';
  const store = Project.open(project, false);
  const runs = store.listRuns();
  const depth = (r: Run): number => (r.record.parent ? 1 + depth(runs.find((x) => x.id === r.record.parent) ?? top) : 0);
  const live = runs.filter((r) => r.status === 'interrupted'); // what was running when the process died
  const inner = live.sort((a, b) => depth(a) - depth(b) || (a.record.runningSince ?? '').localeCompare(b.record.runningSince ?? '')).pop();
  if (!inner) return top.status === 'completed' ? 'after its end' : 'before it started';
  const children = store.children(inner.id);
  let state: string;
  if (inner.readSummary()) state = 'summary written';
  else if (children.length) {
    const done = children.filter((c) => c.status === 'completed').length;
    state = done === children.length ? 'collect (children done)' : `children running (${done} of ${children.length} done)`;
  } else if (inner.latestCheckpoint()) state = 'past a checkpoint';
  else state = inner.readMetrics().some((m) => typeof m.step === 'number' && m.step > 0) ? 'training, no checkpoint yet' : 'starting';
  return `${role(inner)}: ${state}`;
}

/** A random kill whose run ended first (no kill). */
const ENDED_FIRST = 'ended before the kill (not a kill)';

/** Seconds a `normlab` process takes to start before its run folder exists (about; on 2 busy cores). */
const STARTUP_SECONDS = 2.5;

/** Kill a run of the config at a random moment after its run folder exists, resume it, compare. */
async function killAtRandom(kind: string, configFile: string, ref: Reference): Promise<void> {
  const project = freshProject(kind);
  const at = random() * Math.max(0.5, 0.9 * (ref.seconds - STARTUP_SECONDS)) * 1000;
  const proc = startRun(project, configFile);
  while (!proc.done() && !topRun(project)) await new Promise((r) => setTimeout(r, 20));
  await Promise.race([proc.exited, new Promise((r) => setTimeout(r, at))]);
  if (proc.done()) {
    bump(`${kind.padEnd(12)} random: ${ENDED_FIRST}`);
    return;
  }
  proc.kill();
  await proc.exited;
  const phase = phaseAfterKill(project);
  bump(`${kind.padEnd(12)} random: ${phase}`);
  resumeAndCheck(project, `${kind} killed at random (${(at / 1000).toFixed(1)} s, ${phase})`, ref);
}

/** Projects on tmpfs mounts of growing size: every failure is one line, the run is listed and resumes once there is room. */
function diskFull(): void {
  if (DISK_LEVELS === 0) return;
  const lmFile = writeConfig('disk-lm', tinyLmPretrain);
  const refProject = path.join(root, 'disk-reference');
  const straight = cli(refProject, ['run', lmFile]);
  if (straight.status !== 0) throw new Error(`the reference lm-pretrain run failed: ${lastLine(straight.stderr)}`);
  const ref = runResult(Project.open(refProject, false), topRun(refProject)!);
  for (let level = 0; level < DISK_LEVELS; level++) {
    const kib = Math.round(16 * 1.45 ** level);
    const mount = path.join(root, `disk-${level}`);
    fs.mkdirSync(mount);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', mount]).status !== 0) {
      console.log('disk-full levels skipped: cannot mount a tmpfs here (needs Linux and root)');
      return;
    }
    try {
      const r = cli(mount, ['run', lmFile]);
      const full = r.status !== 0;
      bump(`disk ${full ? 'full' : 'roomy'} (${kib} KiB)`);
      if (crashed(r.stderr)) problems.push(`crash: run on a ${kib} KiB disk: ${r.stderr.slice(-300)}`);
      if (full && !/^normlab: /m.test(r.stderr)) problems.push(`not one line: run on a ${kib} KiB disk: ${r.stderr.trim().slice(-300)}`);
      const l = cli(mount, ['--json', 'list']);
      if (l.status !== 0) problems.push(`list failed on a ${kib} KiB disk: ${l.stderr.trim()}`);
      if (!full) continue;
      // More room: the same project, copied, resumes to the uninterrupted result.
      const roomy = path.join(root, `disk-${level}-roomy`);
      fs.cpSync(mount, roomy, { recursive: true });
      const run = topRun(roomy);
      if (!run) continue; // the disk was full before the run folder could be written
      const again = cli(roomy, ['resume', run.id]);
      if (again.status !== 0) {
        problems.push(`unresumable: after a full disk (${kib} KiB): ${lastLine(again.stderr)}`);
        continue;
      }
      const store = Project.open(roomy, false);
      const diffs = resultDiffs(runResult(store, store.run(run.id)), ref);
      if (diffs.length) problems.push(`wrong result after a full disk (${kib} KiB): ${diffs.slice(0, 3).join('; ')}`);
    } finally {
      spawnSync('umount', [mount]);
    }
  }
}

/** Six processes take over one stale lock at the same moment: exactly one may win. */
async function races(): Promise<void> {
  for (let i = 0; i < RACES; i++) {
    const project = Project.open(path.join(root, `race-${i}`));
    const outs = await raceForStaleLock(project, root);
    const winners = outs.filter((o) => o === 'won').length;
    bump(`race: 6 processes on one stale lock`);
    if (winners !== 1) problems.push(`race ${i}: ${winners} processes own one run`);
  }
}

const started = Date.now();
console.log(`fault run: seed ${SEED}${EVERY_PASS ? ', every pass' : ''}, ${KILLS} random kills per job kind, in ${root}`);
for (const [kind, config] of Object.entries(faultJobs(root))) {
  if (kindsArg && !kindsArg.includes(kind)) continue;
  const file = writeConfig(kind, config());
  const ref = reference(kind, file);
  const chosen = passesToKill(ref.passes, ref);
  console.log(
    `${kind}: uninterrupted ${ref.seconds.toFixed(1)} s, ${ref.passes.length} fault-point passes; killing ${chosen.length} of them and ${KILLS} at random`,
  );
  for (const pass of chosen) killAtPass(kind, file, pass, ref);
  for (let i = 0; i < KILLS; i++) await killAtRandom(kind, file, ref);
}
const minutes = (since: number) => `${((Date.now() - since) / 60000).toFixed(1)} min`;
const killsTook = minutes(started);
const disksStarted = Date.now();
diskFull();
const disksTook = minutes(disksStarted);
const racesStarted = Date.now();
await races();
console.log(`kills ${killsTook}, full disks ${disksTook}, races ${minutes(racesStarted)}`);
for (const [k, n] of [...counts].sort()) console.log(`${String(n).padStart(4)}  ${k}`);
const count = (word: string) => problems.filter((p) => p.startsWith(word)).length;
const kills = [...counts].filter(([k]) => !/^(disk|race)/.test(k) && !k.endsWith(ENDED_FIRST)).reduce((s, [, n]) => s + n, 0);
console.log(
  `kills: ${kills}; wrong results: ${count('wrong result')}, unresumable runs: ${count('unresumable')}, crashes: ${count('crash')}, other: ${problems.length - count('wrong result') - count('unresumable') - count('crash')}; ${minutes(started)} (seed ${SEED})`,
);
for (const p of problems) console.log(`  ${p}`);
if (!argv.includes('--keep')) fs.rmSync(root, { recursive: true, force: true });
process.exitCode = problems.length ? 1 : 0;
