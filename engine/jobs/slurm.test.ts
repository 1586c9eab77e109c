/**
 * The Slurm executor against a real one-node cluster (`.ci/slurm-up.sh` starts it; CI does).
 * Where Slurm does not answer, these tests fail under CI (or NORMLAB_REQUIRE_SLURM=1) and skip
 * with the reason elsewhere.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Project, type Run } from '../store/runs.js';
import './all.js';
import { childStates } from './children.js';
import { JobQueue } from './queue.js';

function slurmAnswers(): string | null {
  try {
    const state = execFileSync('sinfo', ['-h', '-o', '%t'], { encoding: 'utf8', timeout: 10_000 }).trim();
    return /^(idle|mix|alloc)/m.test(state) ? null : `the Slurm node is "${state || 'absent'}"`;
  } catch (err) {
    return `sinfo failed (${(err as Error).message.split('\n')[0]}); start the one-node cluster with .ci/slurm-up.sh`;
  }
}

const notUp = slurmAnswers();
const required = Boolean(process.env.CI) || process.env.NORMLAB_REQUIRE_SLURM === '1';
if (notUp && !required) console.warn(`slurm executor tests skipped: ${notUp}`);

/** The tiny sweep: 2 grid points × 2 seeds of a 2-block LLaMA, 60 steps, a checkpoint every 10. */
const tinySweep = (executor: Record<string, unknown>) => ({
  method: 'sweep',
  name: 'tiny',
  base: {
    method: 'lm-pretrain',
    model: { arch: 'llama', layers: 2, d_model: 16, heads: 2 },
    data: { val_fraction: 0.05 },
    train: { steps: 60, batch: 2, seq: 16, warmup: 2, eval_every: 30, eval_windows: 2, checkpoint_every: 10, log_every: 2 },
  },
  grid: { 'model.norm': ['pre', 'lns'] },
  seeds: [0, 1],
  executor,
});

async function until<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 90_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Wait for a parent handed to Slurm to be finished by its collect job. */
const collected = (project: Project, id: string) =>
  until(`the collect job of ${id}`, () => {
    const r = project.run(id);
    return r.status !== 'queued' && r.status !== 'running' ? r : null;
  });

/** The table without the run ids (which differ between executions). */
const table = (run: Run) => (run.readSummary()!.table as Record<string, unknown>[]).map(({ run_ids: _ids, ...row }) => row);

/** A tiny ptq-study: its ViT trained first (stage 1), then one child per preset (stage 2). */
const tinyPtq = (executor: Record<string, unknown>) => ({
  method: 'ptq-study',
  seed: 1,
  vit: {
    model: { patch_size: 7, embed_dim: 16, depth: 1, num_heads: 2, mlp_ratio: 2 },
    train: { epochs: 1, batch: 32, lr: 0.003, warmup: 2 },
  },
  data: { source: 'mnist', calib_count: 8, eval_count: 40 },
  bits: [4, 8],
  presets: ['uniform', 'repq', 'dopq'],
  plot_bits: 4,
  export_bits: 4,
  executor,
});

/** A tiny lct-study: autoencoder + classifier (stage 1), then the two lct runs that use them (stage 2). */
const tinyLct = (executor: Record<string, unknown>) => ({
  method: 'lct-study',
  data: { count: 64, ref_count: 16 },
  autoencoder: { hidden: 16, steps: 2, latent_shape: [2, 2, 2] },
  classifier: { hidden: [8, 8], steps: 2 },
  network: { arch: 'mlp', width: 16, depth: 1, mlp_ratio: 2 },
  train: { steps: 3, batch: 8, warmup: 1, sample_every: 3, log_every: 1 },
  eval: { samples: 8, quick_samples: 8, grid: 4 },
  executor,
});

describe.skipIf(notUp !== null && !required)('slurm executor', () => {
  let dir: string;
  let project: Project;
  let local: Run;
  const submitted: string[] = [];
  let stagesProject: Project | null = null;
  const stagesRuns: string[] = [];
  const elsewhere: { project: Project; id: string }[] = [];

  beforeAll(async () => {
    if (notUp) throw new Error(`Slurm is required here but does not answer: ${notUp}`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-slurm-'));
    project = Project.open(dir);
    const q = new JobQueue(project);
    const t0 = Date.now();
    const run = q.enqueue(tinySweep({ kind: 'local' }));
    await q.wait(run.id);
    local = project.run(run.id);
    console.info(`tiny sweep (4 children), executor local in-process: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(local.status).toBe('completed');
  }, 120_000);

  afterAll(() => {
    const jobs = [
      ...submitted.flatMap((id) => (project.run(id).record.slurm ?? []).flatMap((s) => [s.array_job, s.collect_job])),
      ...stagesRuns.flatMap((id) => (stagesProject!.run(id).record.slurm ?? []).flatMap((s) => [s.array_job, s.collect_job])),
      ...elsewhere.flatMap(({ project: p, id }) => (p.run(id).record.slurm ?? []).flatMap((s) => [s.array_job, s.collect_job])),
    ];
    if (jobs.length) execFileSync('scancel', jobs);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a sweep through a Slurm job array writes the same table as the same sweep run locally', async () => {
    const q = new JobQueue(project);
    const t0 = Date.now();
    const run = q.enqueue(tinySweep({ kind: 'slurm', cpus_per_task: 1 }));
    submitted.push(run.id);
    await q.wait(run.id);
    const parent = project.run(run.id);
    expect(parent.status).toBe('queued');
    expect(parent.record.slurm).toHaveLength(1);
    expect(parent.record.slurm![0].children).toHaveLength(4);
    const done = await collected(project, run.id);
    console.info(`tiny sweep (4 children), executor slurm: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(done.status).toBe('completed');
    expect(done.readSummary()!.missing_children).toEqual([]);
    // Every child ran on Slurm (its array task recorded) in its own process.
    for (const c of project.children(run.id)) {
      expect(c.record.slurm_task).toMatch(/^\d+_[0-3]$/);
      expect(c.status).toBe('completed');
    }
    expect(table(done)).toEqual(table(local));
  }, 120_000);

  it('a project whose path holds a space, quotes, % and $(…) submits and completes, its logs beside the scripts, and nothing injected runs', async () => {
    const mark = path.join(os.tmpdir(), `normlab-slurm-pwned-${process.pid}`);
    // Real folders: "…/a b 100% \"q\" 'q' $(touch " / "tmp" / "normlab-slurm-pwned-N) `touch " / …
    const odd = Project.open(path.join(dir, `a b 100% "q" 'q' $(touch ${mark}) \`touch ${mark}\` #x`));
    const q = new JobQueue(odd);
    const sweep = tinySweep({ kind: 'slurm', extra_args: [`--comment=a b $(touch ${mark})`] });
    const run = q.enqueue({
      ...sweep,
      name: `odd\n/bin/touch ${mark}`,
      grid: { 'model.norm': ['pre'] },
      seeds: [0],
      base: { ...sweep.base, train: { ...sweep.base.train, steps: 4, eval_every: 4 } },
    });
    elsewhere.push({ project: odd, id: run.id });
    await q.wait(run.id);
    expect(odd.run(run.id).status, JSON.stringify(odd.run(run.id).record.error)).toBe('queued');
    const done = await collected(odd, run.id);
    expect(done.status, JSON.stringify(done.record.error)).toBe('completed');
    expect(odd.children(run.id).map((c) => c.status)).toEqual(['completed']);
    const { array_job: arrayJob, collect_job: collectJob } = done.record.slurm![0];
    const logs = fs.readdirSync(path.join(done.dir, 'slurm'));
    expect(logs).toEqual(expect.arrayContaining([`${arrayJob}_0.out`, `collect-${collectJob}.out`]));
    expect(execFileSync('scontrol', ['show', 'job', arrayJob], { encoding: 'utf8' })).toContain(`Comment=a b $(touch ${mark})`);
    expect(fs.existsSync(mark)).toBe(false);
  }, 120_000);

  it('a child killed mid-run is marked missing, and resume reruns only it from its checkpoint to the local table', async () => {
    const q = new JobQueue(project);
    const run = q.enqueue(tinySweep({ kind: 'slurm' }));
    submitted.push(run.id);
    await q.wait(run.id);
    // Cancel the first child's array task once it has a checkpoint and is still training.
    const victim = await until('a child past its first checkpoint', () =>
      project.children(run.id).find((c) => c.status === 'running' && c.latestCheckpoint() !== null && c.readMetrics().every((m) => m.step !== 60)),
    );
    execFileSync('scancel', [victim.record.slurm_task!]);
    const first = await collected(project, run.id);
    expect(first.status).toBe('completed');
    // scancel's SIGTERM (SIGKILL only KillWait later) let the child checkpoint the step it had
    // reached (the loss is logged every 2 steps), not fall back to its last periodic checkpoint.
    const killed = project.run(victim.id);
    const logged = Math.max(...killed.readMetrics().flatMap((m) => (typeof m.loss === 'number' ? [m.step as number] : [])));
    const saved = killed.latestCheckpoint()!.step;
    expect(saved - logged).toBeGreaterThanOrEqual(0);
    expect(saved - logged).toBeLessThanOrEqual(1);
    const missing = first.readSummary()!.missing_children as { run_id: string; status: string }[];
    expect(missing).toEqual([expect.objectContaining({ run_id: victim.id, status: 'interrupted' })]);
    const row = table(first).find((r) => (r.seeds_missing as unknown[]).length > 0)!;
    expect(row.seeds_completed).toHaveLength(1);

    const completedBefore = project
      .children(run.id)
      .filter((c) => c.status === 'completed')
      .map((c) => [c.id, c.record.finished]);
    q.resume(run.id);
    await q.wait(run.id);
    const parent = project.run(run.id);
    expect(parent.record.slurm).toHaveLength(2);
    expect(parent.record.slurm![1].children).toEqual([victim.id]);
    const done = await collected(project, run.id);
    expect(done.status).toBe('completed');
    expect(done.readSummary()!.missing_children).toEqual([]);
    // The others were not run again; the victim continued from its checkpoint.
    for (const [id, finished] of completedBefore) expect(project.run(id!).record.finished).toBe(finished);
    expect(project.run(victim.id).record.resumes).toEqual([saved]);
    expect(table(done)).toEqual(table(local));
  }, 150_000);

  it("studies with stages: each stage's array is submitted by the collect job after the stage before; the tables equal local", async () => {
    const localQ = new JobQueue(Project.open(path.join(dir, 'local-stages')));
    const ptqLocal = localQ.enqueue(tinyPtq({ kind: 'local' }));
    const lctLocal = localQ.enqueue(tinyLct({ kind: 'local' }));
    await localQ.wait(lctLocal.id);
    for (const id of [ptqLocal.id, lctLocal.id]) expect(localQ.project.run(id).status).toBe('completed');
    const expected = localQ.project.run(ptqLocal.id).readSummary()!;
    const lctRows = (run: Run) => (run.readSummary()!.table as Record<string, unknown>[]).map(({ run: _id, ...row }) => row);

    // A project of its own, so the ViT is not already cached and trains on Slurm.
    const slurmProject = Project.open(path.join(dir, 'slurm-stages'));
    const q = new JobQueue(slurmProject);
    const t0 = Date.now();
    const lct = q.enqueue(tinyLct({ kind: 'slurm' }));
    const ptq = q.enqueue(tinyPtq({ kind: 'slurm' }));
    stagesProject = slurmProject;
    stagesRuns.push(lct.id, ptq.id);
    await q.wait(ptq.id);
    // Just submitted: the children's array tasks are in Slurm's queue, and list/show say so.
    const queued = childStates(slurmProject, slurmProject.run(lct.id));
    expect(queued.map((c) => c.slurm)).toEqual([expect.stringMatching(/^(PENDING|CONFIGURING|RUNNING|COMPLETING|COMPLETED)$/), expect.any(String)]);
    const [lctDone, ptqDone] = [await collected(slurmProject, lct.id), await collected(slurmProject, ptq.id)];
    console.info(`lct-study and ptq-study (2 stages each) on slurm: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    for (const [parent, stages] of [
      [
        lctDone,
        [
          ['autoencoder-train', 'image-classifier'],
          ['lct', 'lct'],
        ],
      ],
      [ptqDone, [['vit-train'], ['ptq-preset', 'ptq-preset', 'ptq-preset']]],
    ] as const) {
      expect(parent.status, JSON.stringify(parent.record.error)).toBe('completed');
      const subs = parent.record.slurm!;
      expect(subs.map((s) => s.children.map((id) => slurmProject.run(id).record.method))).toEqual(stages);
      // Stage 2 was submitted (by stage 1's collect job) only after every stage-1 child had ended.
      const stage1End = Math.max(...subs[0].children.map((id) => Date.parse(slurmProject.run(id).record.finished!)));
      expect(Date.parse(subs[1].submitted)).toBeGreaterThanOrEqual(stage1End);
      for (const id of subs.flatMap((s) => s.children)) {
        expect(slurmProject.run(id).status).toBe('completed');
        expect(slurmProject.run(id).record.slurm_task).toMatch(/^\d+_\d+$/);
      }
      // Each collect job waits for its array.
      const scripts = fs.readdirSync(path.join(parent.dir, 'slurm')).filter((f) => f.startsWith('collect-') && f.endsWith('.sbatch'));
      expect(scripts).toHaveLength(2);
      for (const f of scripts) expect(fs.readFileSync(path.join(parent.dir, 'slurm', f), 'utf8')).toMatch(/#SBATCH --dependency=afterany:\d+\n/);
    }
    expect(lctRows(lctDone)).toHaveLength(2);
    expect(lctRows(lctDone)).toEqual(lctRows(localQ.project.run(lctLocal.id)));
    const s = ptqDone.readSummary()!;
    expect(s.table).toEqual(expected.table);
    expect(s.fp_top1).toBe(expected.fp_top1);
    expect(s.missing_children).toEqual([]);
  }, 200_000);
});
