/**
 * The fault run (issue 23): real `normlab` processes killed (SIGKILL) at random moments and at
 * the phase boundaries of each job kind, projects on full disks, and races on one stale lock;
 * every killed run is resumed with `normlab resume` and its result compared with the same config
 * run uninterrupted. Prints the counts per job kind and phase, and the wrong results, unresumable
 * runs and crashes (a stack trace, an `internal` error or a dead server), which must all be 0.
 *
 *   node --import tsx engine/testing/fault-run.ts [--kills N] [--sweep-kills N] [--disk-levels N] [--races N]
 *
 * Full disks are tmpfs mounts (Linux, root); without the right to mount, that part is skipped
 * and says so.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI_ENTRY } from '../core/app-paths.js';
import { Project } from '../store/runs.js';
import { raceForStaleLock } from './lock-race.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const KILLS = arg('kills', 24);
const SWEEP_KILLS = arg('sweep-kills', 8);
const DISK_LEVELS = arg('disk-levels', 17);
const RACES = arg('races', 5);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-fault-run-'));
const lm = {
  method: 'lm-pretrain',
  seed: 7,
  model: { arch: 'llama', layers: 1, d_model: 16, heads: 2 },
  train: { steps: 40, batch: 2, seq: 16, warmup: 2, eval_every: 20, eval_windows: 1, checkpoint_every: 10, log_every: 1 },
  data: { val_fraction: 0.05 },
};
const sweep = { method: 'sweep', base: lm, seeds: [0, 1], executor: { kind: 'local', parallel: 2 } };

const counts = new Map<string, number>();
const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
const problems: string[] = [];

function writeConfig(name: string, config: unknown): string {
  const file = path.join(root, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

/** One CLI call to its end. */
function cli(project: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_ENTRY, '--project', project, '--backend', 'wasm', ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A crash: a stack trace or an `internal` error instead of one line. */
function crashed(stderr: string): boolean {
  return /^\s+at .+:\d+:\d+\)?$/m.test(stderr) || /internal error|TypeError|ReferenceError|Unhandled/.test(stderr);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The store state of the project's one top-level run: what a kill interrupted. */
function phaseOf(project: string, kind: string): string {
  if (!fs.existsSync(path.join(project, 'runs'))) return 'before-run-created';
  const store = Project.open(project, false);
  const runs = store.listRuns().filter((r) => r.record.parent === null);
  if (runs.length === 0) return 'before-run-created';
  const run = runs[0];
  const total = 40;
  if (kind === 'sweep') {
    const children = store.children(run.id);
    const done = children.filter((c) => c.status === 'completed').length;
    if (run.readSummary()) return 'after-summary';
    if (children.length === 2 && done === 2) return 'during-collect (children done, no summary)';
    if (children.length === 0) return 'before-children';
    return `children running (${done} of 2 done)`;
  }
  const ckpt = run.latestCheckpoint()?.step ?? 0;
  const last = Math.max(0, ...run.readMetrics().flatMap((m) => (typeof m.loss === 'number' ? [m.step as number] : [])));
  if (run.readSummary()) return 'after-summary';
  if (ckpt === total) return 'after-final-checkpoint';
  if (last === total) return 'after-last-step';
  if (ckpt > 0 && last === ckpt) return 'at-a-checkpoint';
  return last === 0 ? 'before-first-step' : 'mid-training';
}

/** Start a CLI run and SIGKILL it when `when` holds (or after `ms`); returns what the kill interrupted. */
async function killDuring(project: string, kind: string, configFile: string, when: () => boolean, ms: number): Promise<string | null> {
  const proc = spawn(process.execPath, [CLI_ENTRY, '--project', project, '--backend', 'wasm', 'run', configFile], { stdio: 'ignore' });
  const started = Date.now();
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    let hit = false;
    try {
      hit = when() || Date.now() - started > ms;
    } catch {
      /* a file being written */
    }
    if (hit) break;
    await sleep(2);
  }
  if (done) return null; // it finished before the moment came
  const phase = phaseOf(project, kind);
  proc.kill('SIGKILL');
  await exited;
  return phase;
}

function topRun(project: string) {
  if (!fs.existsSync(path.join(project, 'runs'))) return undefined;
  return Project.open(project, false)
    .listRuns()
    .find((r) => r.record.parent === null);
}

async function reference(): Promise<{ lm: number; sweep: number[] }> {
  const project = path.join(root, 'reference');
  const a = cli(project, ['--json', 'run', writeConfig('lm', lm)]);
  const b = cli(project, ['--json', 'run', writeConfig('sweep', sweep)]);
  if (a.status !== 0 || b.status !== 0) throw new Error(`reference runs failed: ${a.stderr}${b.stderr}`);
  const store = Project.open(project, false);
  const lmRun = store.listRuns().find((r) => r.record.method === 'lm-pretrain' && r.record.parent === null)!;
  const sweepRun = store.listRuns().find((r) => r.record.method === 'sweep')!;
  return {
    lm: lmRun.readSummary()!.final_val_loss as number,
    sweep: store.children(sweepRun.id).map((c) => c.readSummary()!.final_val_loss as number),
  };
}

/** Resume the killed run and compare its result with the reference. */
function resumeAndCheck(project: string, kind: string, phase: string, ref: { lm: number; sweep: number[] }): void {
  const run = topRun(project);
  if (!run) return; // killed before its run existed: nothing to resume
  const r = cli(project, ['resume', run.id]);
  if (crashed(r.stderr)) problems.push(`crash: resume of ${kind} killed ${phase}: ${r.stderr.slice(-300)}`);
  const after = Project.open(project, false).run(run.id);
  if (r.status !== 0 && !(after.status === 'completed' && /nothing to resume/.test(r.stderr))) {
    problems.push(`unresumable: ${kind} killed ${phase}: ${r.stderr.trim().split('\n').pop()}`);
    return;
  }
  if (kind === 'lm-pretrain') {
    if (after.readSummary()!.final_val_loss !== ref.lm)
      problems.push(`wrong result: ${kind} killed ${phase}: ${after.readSummary()!.final_val_loss} != ${ref.lm}`);
  } else {
    const got = Project.open(project, false)
      .children(run.id)
      .map((c) => c.readSummary()?.final_val_loss);
    if (JSON.stringify(got) !== JSON.stringify(ref.sweep) || after.readSummary()!.children_completed !== 2)
      problems.push(`wrong result: ${kind} killed ${phase}: ${JSON.stringify(got)} != ${JSON.stringify(ref.sweep)}`);
  }
}

async function kills(ref: { lm: number; sweep: number[] }): Promise<void> {
  const lmFile = writeConfig('lm', lm);
  const sweepFile = writeConfig('sweep', sweep);
  let step = 0;
  const boundaries: { name: string; when: (project: string) => boolean }[] = [
    {
      name: 'random', // once a random step of training has been logged
      when: (p) => (topRun(p)?.readMetrics() ?? []).some((m) => typeof m.loss === 'number' && (m.step as number) >= step),
    },
    {
      name: 'after-last-step',
      when: (p) => (topRun(p)?.readMetrics() ?? []).some((m) => m.step === 40 && typeof m.loss === 'number'),
    },
    { name: 'after-final-checkpoint', when: (p) => topRun(p)?.latestCheckpoint()?.step === 40 },
  ];
  for (let i = 0; i < KILLS; i++) {
    const project = path.join(root, `lm-${i}`);
    const b = boundaries[i % boundaries.length];
    step = 1 + Math.floor(Math.random() * 39);
    const phase = await killDuring(project, 'lm-pretrain', lmFile, () => b.when(project), 120_000);
    if (phase === null) continue;
    bump(`kill lm-pretrain ${phase}`);
    resumeAndCheck(project, 'lm-pretrain', phase, ref);
  }
  for (let i = 0; i < SWEEP_KILLS; i++) {
    const project = path.join(root, `sweep-${i}`);
    const collect = i % 2 === 1; // every other one: once both children completed, before the parent's summary
    const when = () => {
      const run = topRun(project);
      if (!run) return false;
      const children = Project.open(project, false).children(run.id);
      return collect ? children.length === 2 && children.every((c) => c.status === 'completed') : children.some((c) => c.readMetrics().length > 5);
    };
    const phase = await killDuring(project, 'sweep', sweepFile, when, 120_000);
    if (phase === null) continue;
    bump(`kill sweep ${phase}`);
    resumeAndCheck(project, 'sweep', phase, ref);
  }
}

/** Projects on tmpfs mounts of growing size: every failure is one line, the run is listed and resumes once there is room. */
function diskFull(ref: { lm: number }): void {
  const lmFile = writeConfig('lm', lm);
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
      const after = Project.open(roomy, false).run(run.id);
      if (again.status !== 0) problems.push(`unresumable: after a full disk (${kib} KiB): ${again.stderr.trim().split('\n').pop()}`);
      else if (after.readSummary()!.final_val_loss !== ref.lm) problems.push(`wrong result after a full disk (${kib} KiB)`);
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

const ref = await reference();
console.log(`reference: lm-pretrain final_val_loss ${ref.lm}; sweep children ${ref.sweep.join(', ')}`);
await kills(ref);
diskFull(ref);
await races();
for (const [k, n] of [...counts].sort()) console.log(`${String(n).padStart(4)}  ${k}`);
const count = (word: string) => problems.filter((p) => p.startsWith(word)).length;
console.log(
  `wrong results: ${count('wrong result')}, unresumable runs: ${count('unresumable')}, crashes: ${count('crash')}, other: ${problems.length - count('wrong result') - count('unresumable') - count('crash')}`,
);
for (const p of problems) console.log(`  ${p}`);
fs.rmSync(root, { recursive: true, force: true });
process.exitCode = problems.length ? 1 : 0;
