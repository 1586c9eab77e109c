/** Running NormLab's PyTorch parity scripts from tests (Debian's python3-torch). */
import { execFileSync, spawnSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

/** Can /usr/bin/python3 import torch here? (CI installs python3-torch; tests skip only if not.) */
export const hasTorch: boolean = (() => {
  try {
    return spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
})();

/** Run a Python script and parse the JSON object on the last line of its stdout. */
export function runTorchScript(script: string, args: string[] = []): Record<string, unknown> {
  const stdout = execFileSync(PYTHON, [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}
