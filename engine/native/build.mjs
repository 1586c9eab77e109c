#!/usr/bin/env node
/**
 * Builds NormLab's optional native kernels (engine/native) with node-gyp, as part of `npm install`.
 * Needs a C compiler and Node's headers (node-gyp comes with npm); OpenBLAS is loaded at run time,
 * not linked. When the build cannot run, this prints why and exits 0: the engine then uses its
 * wasm kernels only. NORMLAB_NATIVE=0 skips the build.
 *
 * On x86-64 machines with AVX2 and FMA the kernels are compiled for x86-64-v3; the loader
 * (engine/backend/native.ts) refuses such a build on a CPU without them (build/target.json).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const say = (msg) => process.stderr.write(`normlab native: ${msg}\n`);

if (process.env.NORMLAB_NATIVE === '0') {
  say('skipped (NORMLAB_NATIVE=0)');
  process.exit(0);
}

function cpuFlags() {
  try {
    const line = fs
      .readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    return new Set((line ?? '').split(':')[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return new Set();
  }
}

const flags = cpuFlags();
const x86v3 = process.arch === 'x64' && flags.has('avx2') && flags.has('fma');
const arch = x86v3 ? 'x86-64-v3' : 'generic';

// npm sets npm_config_node_gyp in lifecycle scripts; otherwise use the node-gyp npm ships with.
const candidates = [
  process.env.npm_config_node_gyp,
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const nodeGyp = candidates.find((p) => fs.existsSync(p));
if (!nodeGyp) {
  say('node-gyp not found; the engine will use its wasm kernels only');
  process.exit(0);
}

// Node's own headers (this machine kind has them under /usr/include/node; npm's config names the
// folder as nodedir): node-gyp would otherwise download them.
const nodedir =
  process.env.npm_config_nodedir || [path.join(path.dirname(process.execPath), '..')].find((d) => fs.existsSync(path.join(d, 'include', 'node', 'node_api.h')));
const gypArgs = [nodeGyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const r = spawnSync(process.execPath, gypArgs, {
  cwd: here,
  stdio: ['ignore', 'ignore', 'pipe'],
  encoding: 'utf8',
  env: { ...process.env, NORMLAB_NATIVE_ARCH_FLAG: x86v3 ? '-march=x86-64-v3' : '-O3' },
});
if (r.status !== 0) {
  const why = (r.stderr || r.error?.message || '')
    .trim()
    .split('\n')
    .filter((l) => /error/i.test(l))
    .slice(0, 3)
    .join(' | ');
  say(`build failed, the engine will use its wasm kernels only (${why || `exit ${r.status}`})`);
  process.exit(0);
}
fs.writeFileSync(path.join(here, 'build', 'target.json'), JSON.stringify({ arch }) + '\n');
say(`built (${arch})`);
