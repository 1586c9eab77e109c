import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeKernels } from '../backend/native.js';
import { NORMLAB_VERSION } from '../core/versions.js';
import { softwareVulkan } from '../testing/webgpu.js';
import { buildBundle, type BundleResult } from './build.js';

const REPO_BIN = path.resolve(__dirname, '../../bin/normlab.js');

/** A tiny pretraining run: a few steps on the embedded corpus, with its plots. */
const TINY_RUN = `method: lm-pretrain
name: bundle-tiny
seed: 7
model: { layers: 2, d_model: 32, heads: 2 }
data: { source: moby-dick, tokenizer: byte, val_fraction: 0.05 }
train: { steps: 4, batch: 4, seq: 32, lr: 0.002, warmup: 2, eval_every: 4, eval_windows: 2, log_every: 2, checkpoint_every: 4 }
`;

/** A tiny PTQ study: reads the mnist digits the bundle carries. */
const TINY_PTQ = `method: ptq-study
name: bundle-ptq
vit:
  model: { patch_size: 7, embed_dim: 16, depth: 1, num_heads: 2, mlp_ratio: 2 }
  train: { epochs: 1, batch: 32, lr: 0.003, warmup: 10 }
data: { source: mnist, calib_count: 8, eval_count: 40 }
bits: [8]
presets: [uniform]
plot_bits: 8
export_bits: 8
`;

/** Every folder from `dir` up to / that holds a node_modules folder. */
function nodeModulesAbove(dir: string): string[] {
  const found: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'node_modules'))) found.push(d);
    if (path.dirname(d) === d) return found;
  }
}

describe.skipIf(process.platform !== 'linux' || process.arch !== 'x64')('the portable bundle', () => {
  let work: string;
  let built: BundleResult;
  let bundleDir: string;
  const sw = softwareVulkan();
  const icd = 'icd' in sw ? sw.icd : null;

  /** Run `node normlab.mjs ...` from the unpacked bundle with no npm environment. */
  function bundled(...args: string[]) {
    const env: Record<string, string> = { PATH: '/usr/bin:/bin', HOME: work, TMPDIR: work, XDG_RUNTIME_DIR: work };
    if (icd) env.VK_ICD_FILENAMES = icd;
    const r = spawnSync(process.execPath, [path.join(bundleDir, 'normlab.mjs'), ...args], { cwd: work, env, encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-bundle-'));
    built = await buildBundle({ outDir: path.join(work, 'out'), xzLevel: 0 }); // the fastest preset: the test checks the round trip, not the size
    const unpacked = path.join(work, 'unpacked');
    fs.mkdirSync(unpacked);
    const tar = spawnSync('tar', ['-C', unpacked, '-xf', built.tarball!], { encoding: 'utf8' });
    expect(tar.status, tar.stderr).toBe(0);
    bundleDir = path.join(unpacked, 'normlab');
    fs.writeFileSync(path.join(work, 'tiny.yaml'), TINY_RUN);
    fs.writeFileSync(path.join(work, 'ptq.yaml'), TINY_PTQ);
  }, 180_000);

  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it('unpacks where no node_modules is on the resolution path but its own', () => {
    expect(nodeModulesAbove(bundleDir)).toEqual([bundleDir]);
    expect(fs.readdirSync(path.join(bundleDir, 'node_modules')).sort()).toEqual(['@resvg', '@stdlib', '@tensorflow', 'mnist', 'webgpu']);
    expect(built.tarballBytes).toBeGreaterThan(0);
  });

  it('answers --help and --version', () => {
    const help = bundled('--help');
    expect(help.code, help.stderr).toBe(0);
    for (const c of ['run', 'bench', 'serve', 'eval-lm']) expect(help.stdout).toMatch(new RegExp(`\\n  ${c}\\b`));
    expect(bundled('--version').stdout.trim()).toBe(NORMLAB_VERSION);
  });

  it('lists its backends: wasm with the native kernels it carries, webgpu through the dawn.node it carries', () => {
    const r = bundled('backends', '--json');
    expect(r.code, r.stderr).toBe(0);
    const { backends } = JSON.parse(r.stdout) as { backends: Array<{ name: string; loads: boolean; detail: string }> };
    const byName = new Map(backends.map((b) => [b.name, b]));
    expect(byName.get('wasm')?.loads).toBe(true);
    if (nativeKernels()) expect(byName.get('wasm')?.detail).toMatch(/; native kernels \(OpenBLAS/);
    if (icd) expect(byName.get('webgpu')?.detail).toMatch(/^webgpu on /);
    else expect(byName.get('webgpu')?.loads).toBe(false);
  });

  it('runs a tiny pretraining to the same losses as the source checkout, plots included', () => {
    const r = bundled('--project', path.join(work, 'p-bundle'), '--json', 'run', path.join(work, 'tiny.yaml'));
    expect(r.code, r.stderr).toBe(0);
    const fromBundle = JSON.parse(r.stdout) as { status: string; dir: string; summary: { final_val_loss: number } };
    expect(fromBundle.status).toBe('completed');
    const png = fs.readFileSync(path.join(fromBundle.dir, 'artifacts', 'layer_variance.png'));
    expect([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join('')).toBe('PNG'); // drawn by the bundled resvg

    const src = spawnSync(process.execPath, [REPO_BIN, '--project', path.join(work, 'p-src'), '--json', 'run', path.join(work, 'tiny.yaml')], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(src.status, src.stderr).toBe(0);
    const fromSource = JSON.parse(src.stdout) as { summary: { final_val_loss: number } };
    expect(fromBundle.summary.final_val_loss).toBe(fromSource.summary.final_val_loss);
  });

  it('runs a tiny PTQ study on the mnist digits it carries', () => {
    const r = bundled('--project', path.join(work, 'p-bundle'), '--json', 'run', path.join(work, 'ptq.yaml'));
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { status: string; summary: { eval_images: number; fp_top1: number } };
    expect(out.status).toBe('completed');
    expect(out.summary.eval_images).toBe(40);
    expect(out.summary.fp_top1).toBeGreaterThan(0.1); // above chance after one epoch
  });
});
