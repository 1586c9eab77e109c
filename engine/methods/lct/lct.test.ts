import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { resolveConfig } from '../../jobs/config.js';
import { JobQueue } from '../../jobs/queue.js';
import '../../jobs/all.js';
import { Project } from '../../store/runs.js';
import { loadTrainImages } from './data.js';
import { studyConfigurations } from './study.js';

let tmp: string;
beforeAll(async () => {
  await initBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-lct-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeGray(file: string, w: number, h: number): void {
  const png = new PNG({ width: w, height: h });
  png.data.fill(128);
  fs.writeFileSync(file, PNG.sync.write(png));
}

async function runConfig(project: Project, config: Record<string, unknown>) {
  const q = new JobQueue(project, 'wasm');
  const run = q.enqueue(config);
  await q.wait(run.id);
  return project.run(run.id);
}

describe('lct bad input', () => {
  it('an image folder with no images is a one-line data error', async () => {
    const dir = path.join(tmp, 'empty');
    fs.mkdirSync(dir);
    await expect(loadTrainImages({ source: 'folder', path: dir, count: null, ref_count: 10, grayscale: 'auto' }, 0)).rejects.toThrow(/has no PNG images/);
  });

  it('an image folder with mixed sizes is a one-line data error naming both files', async () => {
    const dir = path.join(tmp, 'mixed');
    fs.mkdirSync(dir);
    writeGray(path.join(dir, 'a.png'), 8, 8);
    writeGray(path.join(dir, 'b.png'), 9, 8);
    await expect(loadTrainImages({ source: 'folder', path: dir, count: null, ref_count: 10, grayscale: 'auto' }, 0)).rejects.toThrow(
      /images differ in size: .*a\.png is 8×8, .*b\.png is 9×8/,
    );
  });

  it('a curriculum with s1 < s0 is rejected when the config is read', () => {
    expect(() => resolveConfig({ method: 'lct-study', train: { s0: 40, s1: 20 } })).toThrow(/s1.*no smaller than s0/);
    expect(() => resolveConfig({ method: 'lct', autoencoder: 'a', classifier: 'b', train: { s0: 40, s1: 20 } })).toThrow(/s1.*no smaller than s0/);
  });

  it('a latent shape the network cannot take fails the study before anything trains', async () => {
    const project = Project.open(path.join(tmp, 'bad-latent'));
    const run = await runConfig(project, {
      method: 'lct-study',
      autoencoder: { latent_shape: [5, 5, 2] },
      network: { arch: 'transformer', patch: 2 },
    });
    expect(run.status).toBe('failed');
    expect(run.record.error?.message).toMatch(/latent shape 5x5x2 cannot be cut into 2x2 patches/);
    expect(project.listRuns().filter((r) => r.record.parent === run.id)).toHaveLength(0);
  });

  it('ablations expand to the switch sets of the ablation table', () => {
    expect(studyConfigurations({ ablation: 'baseline-vs-full', configurations: [] }).map((r) => r.name)).toEqual(['baseline iLCT', 'full recipe']);
    const add = studyConfigurations({ ablation: 'add-one', configurations: [] });
    expect(add).toHaveLength(7);
    expect(add[1]).toEqual({ name: '+ cauchy', cauchy: true, diffusion_loss: false, ot: false, adaptive_c: false, nsln: false });
    const loo = studyConfigurations({ ablation: 'leave-one-out', configurations: [] });
    expect(loo).toHaveLength(6);
    expect(loo[4]).toEqual({ name: 'full − nsln', cauchy: true, diffusion_loss: true, ot: true, adaptive_c: true, nsln: false });
  });
});

describe('lct-study end to end (tiny)', () => {
  it('trains autoencoder and classifier once, runs each configuration, writes the table and sample grids', async () => {
    const project = Project.open(path.join(tmp, 'proj'));
    const run = await runConfig(project, {
      method: 'lct-study',
      data: { count: 256, ref_count: 64 },
      autoencoder: { hidden: 32, steps: 4, latent_shape: [2, 2, 2] },
      classifier: { hidden: [16, 8], steps: 4 },
      network: { arch: 'transformer', patch: 1, width: 16, depth: 1, heads: 2 },
      train: { steps: 6, batch: 8, warmup: 1, sample_every: 3, log_every: 2 },
      eval: { samples: 24, quick_samples: 12, grid: 9 },
    });
    expect(run.status, JSON.stringify(run.record.error)).toBe('completed');
    const summary = run.readSummary()!;
    const table = summary.table as Array<Record<string, unknown>>;
    expect(table.map((r) => r.configuration)).toEqual(['baseline iLCT', 'full recipe']);
    for (const r of table) {
      expect(Number.isFinite(r.fid_1step)).toBe(true);
      expect(Number.isFinite(r.fid_2step)).toBe(true);
    }
    expect(run.artifacts()).toEqual(expect.arrayContaining(['table.md', 'table.csv', 'fid.png', 'class-histograms.png']));
    const runs = summary.runs as { autoencoder: string; classifier: string; lct: string[] };
    expect(runs.lct).toHaveLength(2);
    const children = project.listRuns().filter((r) => r.record.parent === run.id);
    expect(children.filter((r) => r.record.method === 'autoencoder-train')).toHaveLength(1);
    expect(children.filter((r) => r.record.method === 'image-classifier')).toHaveLength(1);
    for (const id of runs.lct) {
      const files = project.run(id).artifacts();
      expect(files).toEqual(expect.arrayContaining(['samples-1step.png', 'samples-2step.png', 'samples-step000003-1step.png', 'class-histogram.png']));
      const hist = project.run(id).readSummary()!.class_histogram_1step as number[];
      expect(hist.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    }
    expect(fs.readFileSync(path.join(run.dir, 'artifacts', 'table.md'), 'utf8')).toMatch(/FID \(MNIST-classifier features\)/);
    // Full − baseline: paired over the shared noise seeds, its interval diff ± 1.96 · sd(replicate differences).
    const [base, full] = runs.lct.map((id) => project.run(id).readSummary()!);
    const kr = summary.key_result as { value: number; ci95: [number, number]; verdict: string; interval: string };
    expect(kr.value).toBeCloseTo((full.fid_1step as number) - (base.fid_1step as number), 9);
    const rb = (base.fid_bootstrap as { replicates_1step: number[] }).replicates_1step;
    const rf = (full.fid_bootstrap as { replicates_1step: number[] }).replicates_1step;
    const d = rf.map((x, i) => x - rb[i]);
    const m = d.reduce((a, b) => a + b, 0) / d.length;
    const se = Math.sqrt(d.reduce((a, b) => a + (b - m) ** 2, 0) / (d.length - 1));
    expect(kr.ci95[1] - kr.value).toBeCloseTo(1.959963984540054 * se, 9);
    expect(kr.interval).toMatch(/^paired bootstrap/);
    expect(['better', 'worse', 'within noise']).toContain(kr.verdict);
    expect(project.run(runs.lct[0]).artifacts()).toEqual(expect.arrayContaining(['features-1step.f32', 'features-reference.f32']));
    expect(base.floor_images).toBe(24); // the floors at the samples' n
  }, 240_000);
});
