import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { Project, Run } from '../store/runs.js';
import './all.js';
import { dryRun, formatDryRun } from './dry-run.js';
import { executorSchema } from './executor.js';
import { JobQueue } from './queue.js';
import { slurmScripts } from './slurm.js';
import { gridPoints, meanStd, setPath, sweepChildren, sweepSchema } from './sweep.js';

const lmBase = { method: 'lm-pretrain', model: { arch: 'llama', layers: 2, d_model: 16, heads: 2 } };

describe('sweep grid', () => {
  it('expands every combination, the first key slowest, and sets dotted paths', () => {
    const points = gridPoints({ 'model.norm': ['pre', 'lns'], 'train.lr': [1e-3, 5e-4] });
    expect(points.map((p) => p.label)).toEqual([
      'model.norm=pre, train.lr=0.001',
      'model.norm=pre, train.lr=0.0005',
      'model.norm=lns, train.lr=0.001',
      'model.norm=lns, train.lr=0.0005',
    ]);
    expect(setPath({ model: { arch: 'llama', layers: 2 } }, 'model.norm', 'lns')).toEqual({ model: { arch: 'llama', layers: 2, norm: 'lns' } });
    expect(setPath({}, 'train.lr', 0.1)).toEqual({ train: { lr: 0.1 } });
  });

  it('makes one child per grid point and seed, and names the grid point whose config is wrong', () => {
    const cfg = sweepSchema.parse({ method: 'sweep', base: lmBase, grid: { 'model.norm': ['pre', 'lns'] }, seeds: [0, 1, 2] });
    const children = sweepChildren(cfg);
    expect(children.map((c) => c.key)).toEqual([
      'model.norm=pre seed=0',
      'model.norm=pre seed=1',
      'model.norm=pre seed=2',
      'model.norm=lns seed=0',
      'model.norm=lns seed=1',
      'model.norm=lns seed=2',
    ]);
    expect(children[4].config).toMatchObject({ seed: 1, model: { norm: 'lns', layers: 2 } });
    const bad = sweepSchema.parse({ method: 'sweep', base: lmBase, grid: { 'model.norm': ['pre', 'sideways'] } });
    expect(() => sweepChildren(bad)).toThrow(/^sweep grid point model\.norm=sideways: config model\.norm/);
    expect(sweepSchema.safeParse({ method: 'sweep', base: { model: {} } }).success).toBe(false);
  });

  it('mean and sample standard deviation (n − 1) match hand values', () => {
    expect(meanStd([1, 2, 3, 4])).toEqual({ mean: 2.5, std: Math.sqrt(5 / 3) });
    expect(meanStd([7])).toEqual({ mean: 7, std: null });
    expect(meanStd([])).toEqual({ mean: null, std: null });
  });
});

describe('executor config', () => {
  it('takes a kind name as shorthand and rejects bad Slurm options in one line', () => {
    expect(executorSchema.parse(undefined)).toEqual({ kind: 'local', parallel: 1 });
    expect(executorSchema.parse('slurm')).toMatchObject({ kind: 'slurm', cpus_per_task: 1, gpus_per_task: 0, requeue: true });
    expect(executorSchema.safeParse({ kind: 'slurm', time: 'two hours' }).success).toBe(false);
    expect(executorSchema.safeParse({ kind: 'kubernetes' }).success).toBe(false);
    expect(executorSchema.safeParse({ kind: 'local', partition: 'gpu' }).success).toBe(false);
  });

  it('the Slurm scripts of a 36-run LNS sweep: one array of 36 tasks with the GPU request, a collect job after it, valid bash', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-sbatch-'));
    try {
      const project = Project.open(dir);
      const cfg = sweepSchema.parse(YAML.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../assets/examples/lns-sweep-slurm.yaml'), 'utf8')));
      const children = sweepChildren(cfg);
      expect(children).toHaveLength(36);
      const parent = project.createRun('sweep', cfg, { seed: 0 });
      const runs = children.map((c) => project.createRun('lm-pretrain', c.config, { seed: c.seed, parent: parent.id }));
      const exec = executorSchema.parse(cfg.executor);
      if (exec.kind !== 'slurm') throw new Error('the example uses the slurm executor');
      const s = slurmScripts({
        cfg: exec,
        parent,
        children: runs,
        projectDir: dir,
        backend: 'auto',
        engineCommand: 'node /shared/normlab/bin/normlab.js',
        logDir: path.join(parent.dir, 'slurm'),
      });
      expect(s.array.startsWith('#!/bin/bash\n')).toBe(true);
      expect(s.array).toContain('#SBATCH --array=0-35%8\n');
      expect(s.array).toContain('#SBATCH --gpus-per-task=1\n');
      expect(s.array).toContain('#SBATCH --requeue\n');
      expect(s.array).toMatch(/children=\((\S+ ){35}\S+\)/);
      expect(s.array).toContain(`run-child "\${children[$SLURM_ARRAY_TASK_ID]}"`);
      const collect = s.collect('4242');
      expect(collect).toContain('#SBATCH --dependency=afterany:4242\n');
      expect(collect).toContain(`collect ${parent.id}`);
      expect(collect).not.toContain('--gpus-per-task');
      for (const script of [s.array, collect]) execFileSync('bash', ['-n'], { input: script });
      // Pinned to webgpu, the collect job (which may evaluate, e.g. ptq-study's FP top-1) needs the GPU too.
      const pinned = slurmScripts({ cfg: exec, parent, children: runs, projectDir: dir, backend: 'webgpu', engineCommand: 'normlab', logDir: dir });
      expect(pinned.collect('1')).toContain('#SBATCH --gpus-per-task=1\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('dry run', () => {
  it('prints the 36-task array and collect scripts of the LNS sweep, and the first stage of an lct-study, leaving the project empty', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-dry-run-test-'));
    try {
      const sweep = YAML.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../assets/examples/lns-sweep-slurm.yaml'), 'utf8'));
      const r = await dryRun(sweep, dir, 'wasm');
      expect(r.stages).toHaveLength(1);
      const [stage] = r.stages;
      expect(stage.children).toHaveLength(36);
      expect(stage.children[35]).toMatchObject({ method: 'lm-pretrain', key: 'model.norm=lns, model.layers=24 seed=2' });
      expect(stage.scripts!.array).toContain('#SBATCH --array=0-35%8\n');
      expect(stage.scripts!.array).toContain(`--project ${dir} --backend wasm run-child`);
      expect(stage.scripts!.collect).toContain('#SBATCH --dependency=afterany:<array job id>\n');
      expect(formatDryRun(r)).toContain('# sweep: 36 child runs, executor slurm; nothing was run or submitted');

      const lct = await dryRun({ method: 'lct-study', executor: { kind: 'local', parallel: 2 } }, dir, 'wasm');
      expect(lct.stages[0].children.map((c) => c.method)).toEqual(['autoencoder-train', 'image-classifier']);
      expect(lct.stages[0].commands[1]).toMatch(/run-child \S+-image-classifier-\w+$/);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('resume of a parent', () => {
  it('a parent that dies just after making a child run finds that child by its key when resumed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-sweep-child-key-'));
    const update = Run.prototype.update;
    try {
      const project = Project.open(dir);
      const q = new JobQueue(project);
      // The process dies right after a new child's first run.json is written (before the parent hands it on).
      const dies = vi.spyOn(Run.prototype, 'update').mockImplementation(function (this: Run, patch) {
        if (this.record.parent !== null && this.record.started === null && patch.pid === null) throw new Error('killed');
        update.call(this, patch);
      });
      const sweep = q.enqueue({
        method: 'sweep',
        base: { ...lmBase, train: { steps: 2, batch: 2, seq: 16, warmup: 1, eval_every: 2, eval_windows: 1, log_every: 1 }, data: { val_fraction: 0.05 } },
        seeds: [0, 1],
      });
      await q.wait(sweep.id);
      dies.mockRestore();
      expect(project.children(sweep.id)).toHaveLength(1);
      q.resume(sweep.id);
      await q.wait(sweep.id);
      expect(project.run(sweep.id).status).toBe('completed');
      expect(project.children(sweep.id).map((c) => [c.record.child_key, c.status])).toEqual([
        ['base seed=0', 'completed'],
        ['base seed=1', 'completed'],
      ]);
    } finally {
      Run.prototype.update = update;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a cancelled sweep resumed runs only its children that did not complete', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-sweep-resume-'));
    try {
      const project = Project.open(dir);
      const q = new JobQueue(project);
      const sweep = q.enqueue({
        method: 'sweep',
        base: {
          ...lmBase,
          train: { steps: 6, batch: 2, seq: 16, warmup: 1, eval_every: 6, eval_windows: 1, checkpoint_every: 3, log_every: 1 },
          data: { val_fraction: 0.05 },
        },
        seeds: [0, 1],
      });
      // Cancel the sweep as soon as its second child starts.
      let started = 0;
      const off = q.on((e) => {
        if (e.event === 'run-state' && e.status === 'running' && e.runId !== sweep.id && ++started === 2) q.cancel(sweep.id);
      });
      await q.wait(sweep.id);
      off();
      expect(project.run(sweep.id).status).toBe('cancelled');
      const [first, second] = project.children(sweep.id);
      expect(first.status).toBe('completed');
      expect(second.status).toBe('cancelled');
      q.resume(sweep.id);
      await q.wait(sweep.id);
      const done = project.run(sweep.id);
      expect(done.status).toBe('completed');
      expect(project.children(sweep.id)).toHaveLength(2);
      expect(project.run(first.id).record.finished).toBe(first.record.finished);
      expect(project.run(first.id).record.resumes).toEqual([]);
      expect(project.run(second.id).status).toBe('completed');
      expect(project.run(second.id).record.resumes).toHaveLength(1);
      expect(done.readSummary()!.children_completed).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
