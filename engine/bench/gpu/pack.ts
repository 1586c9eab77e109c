/**
 * `npm run pack:gpu`: everything a GPU machine without Node, npm or network needs to run NormLab's
 * webgpu bench and its PyTorch twin (./run-on-gpu.sh), in one folder, dist-gpu/ by default:
 * - the portable bundle (engine/bundle/build.ts) as its .tar.xz;
 * - this machine's Node binary, xz-compressed (it must be a self-contained build, like the
 *   official or NodeSource ones, not one linked to a shared libnode);
 * - Debian's Vulkan loader (libvulkan1), the GL vendor-neutral dispatch libraries the NVIDIA
 *   driver's Vulkan library links to (libglvnd0, libglx0, libegl1; a container often mounts the
 *   driver without them) and the C++ runtime (libstdc++6), as .deb files from `apt-get download`;
 *   run-on-gpu.sh uses each only where the machine lacks it;
 * - run-on-gpu.sh and SHA256SUMS.
 * The folder must stay under 64 MiB (what such a machine is given); the packer fails otherwise.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { appPath } from '../../core/app-paths.js';
import { fail } from '../../core/errors.js';
import { buildBundle } from '../../bundle/build.js';

/** Debian packages carried as .deb files (amd64). */
export const CARRIED_DEBS = ['libvulkan1', 'libglvnd0', 'libglx0', 'libegl1', 'libstdc++6'];
export const MAX_CARRY_BYTES = 64 * 2 ** 20;

export interface GpuPack {
  dir: string;
  files: Array<{ name: string; bytes: number }>;
  totalBytes: number;
}

function run(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) fail('io', `${cmd} ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`);
}

/** A Node binary that needs no shared libnode (Debian's own /usr/bin/node does). */
function checkNodeIsSelfContained(node: string): void {
  const r = spawnSync('ldd', [node], { encoding: 'utf8' });
  if (/libnode\.so/.test(r.stdout ?? '')) fail('config', `${node} is linked to a shared libnode: carry an official Node 20+ build instead`);
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) fail('config', `Node ${process.versions.node} is too old: the bundle needs Node 20+`);
}

/** Build the carry folder; see the module comment. */
export async function packGpu(outDir = appPath('dist-gpu')): Promise<GpuPack> {
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(path.join(outDir, 'debs'), { recursive: true });

  const bundle = await buildBundle({ outDir: path.join(outDir, '.build') });
  fs.renameSync(bundle.tarball!, path.join(outDir, path.basename(bundle.tarball!)));
  fs.rmSync(path.join(outDir, '.build'), { recursive: true, force: true });

  const node = process.execPath;
  checkNodeIsSelfContained(node);
  const nodeXz = path.join(outDir, `node-v${process.versions.node}-linux-x64.xz`);
  const xz = spawnSync('xz', ['-9', '-T2', '-c', node], { maxBuffer: 256 * 2 ** 20 });
  if (xz.status !== 0) fail('io', `xz could not compress ${node}: ${String(xz.stderr).trim()}`);
  fs.writeFileSync(nodeXz, xz.stdout);

  // apt-get download fetches the candidate version for the architecture named (amd64, whatever
  // this machine's own is); its files land in the working directory.
  run(
    'apt-get',
    ['download', '-o', 'APT::Architecture=amd64', '-o', 'APT::Architectures=amd64', ...CARRIED_DEBS.map((p) => `${p}:amd64`)],
    path.join(outDir, 'debs'),
  );

  fs.copyFileSync(appPath('engine', 'bench', 'gpu', 'run-on-gpu.sh'), path.join(outDir, 'run-on-gpu.sh'));
  fs.chmodSync(path.join(outDir, 'run-on-gpu.sh'), 0o755);

  const files: GpuPack['files'] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else files.push({ name: path.relative(outDir, p), bytes: fs.statSync(p).size });
    }
  };
  walk(outDir);
  files.sort((a, b) => a.name.localeCompare(b.name));
  const sums = files.map(
    (f) =>
      `${crypto
        .createHash('sha256')
        .update(fs.readFileSync(path.join(outDir, f.name)))
        .digest('hex')}  ${f.name}`,
  );
  fs.writeFileSync(path.join(outDir, 'SHA256SUMS'), sums.join('\n') + '\n');
  const totalBytes = files.reduce((a, f) => a + f.bytes, 0);
  if (totalBytes > MAX_CARRY_BYTES) fail('config', `the GPU carry is ${(totalBytes / 2 ** 20).toFixed(1)} MiB, over the 64 MiB limit`);
  return { dir: outDir, files, totalBytes };
}

async function cli(): Promise<void> {
  const pack = await packGpu(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  for (const f of pack.files) process.stdout.write(`pack:gpu: ${f.name} ${(f.bytes / 2 ** 20).toFixed(1)} MiB\n`);
  process.stdout.write(
    `pack:gpu: ${path.relative(process.cwd(), pack.dir)}/ ${(pack.totalBytes / 2 ** 20).toFixed(1)} MiB in all; on the GPU machine: OUT=<dir> bash run-on-gpu.sh\n`,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === appPath('engine', 'bench', 'gpu', 'pack.ts')) {
  cli().catch((err: unknown) => {
    process.stderr.write(`pack:gpu: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
