#!/usr/bin/env node
// `npm start`: the desktop app when Electron's binary is installed; otherwise (offline installs
// skip its download) say so in one line and serve browser mode, printing the URL to open.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureRenderer } from './build-renderer.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);

/**
 * The installed Electron binary, or null. Looked up as the electron package records it
 * (`path.txt` names the binary under `dist/`) without requiring the package: its entry point
 * downloads a missing binary, which offline fails with a stack trace.
 */
function electronBinary() {
  let dir;
  try {
    dir = path.dirname(require.resolve('electron/package.json'));
  } catch {
    return null;
  }
  const pathFile = path.join(dir, 'path.txt');
  if (!fs.existsSync(pathFile)) return null;
  const binary = path.join(process.env.ELECTRON_OVERRIDE_DIST_PATH ?? path.join(dir, 'dist'), fs.readFileSync(pathFile, 'utf8').trim());
  return fs.existsSync(binary) ? binary : null;
}

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
const renderer = ensureRenderer({ root });
if (renderer.error) {
  process.stderr.write(`normlab: ${renderer.error}\n`);
  process.exit(1);
}

const bin = electronBinary();
if (bin) {
  if (!fs.existsSync(path.join(root, 'dist-electron', 'main.js'))) run(npx, ['tsc', '-p', 'electron/tsconfig.json']);
  const child = spawn(bin, [root, ...args], { cwd: root, stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
} else {
  process.stderr.write('normlab: the Electron binary is not installed (offline install); serving browser mode instead.\n');
  const child = spawn(process.execPath, [path.join(root, 'bin', 'normlab.js'), 'serve', ...args], { cwd: root, stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
}
