import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');

/**
 * `normlab --help` (and `normlab` alone) loads no job kind and no TensorFlow.js: a child process runs the CLI's main and reports,
 * as it exits, whether tfjs-core created its engine (`globalThis._tfengine`) and how long the help took.
 */
function help(...args: string[]) {
  const script = `
    import { register } from 'tsx/esm/api';
    register();
    const t0 = performance.now();
    process.on('exit', () => process.stderr.write('\\nREPORT ' + JSON.stringify({ tf: '_tfengine' in globalThis, ms: performance.now() - t0 }) + '\\n'));
    const { main } = await import('./engine/cli/main.ts');
    await main(['node', 'normlab', ${args.map((a) => JSON.stringify(a)).join(', ')}]);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const report = JSON.parse(/REPORT (.*)/.exec(r.stderr)?.[1] ?? 'null') as { tf: boolean; ms: number } | null;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, report };
}

const COMMANDS = [
  'run',
  'sweep',
  'run-child',
  'collect',
  'cancel',
  'demo',
  'resume',
  'list',
  'show',
  'export',
  'make-tiny-hf',
  'eval-lm',
  'eval-vit',
  'serve',
  'backends',
  'bench',
];

describe('normlab --help is fast', () => {
  it('--help loads neither TensorFlow.js nor the job kinds, lists every command, and takes well under 2 s', () => {
    const r = help('--help');
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`\\n  ${c}\\b`));
    expect(r.report?.tf).toBe(false);
    // Measured here: about 0.3 s after the fix, 3 s before (7 s on a slow laptop); 2 s leaves room for a loaded CI machine.
    expect(r.report!.ms).toBeLessThan(2000);
  });

  it('normlab with no command prints the help without loading TensorFlow.js', () => {
    const r = help();
    for (const c of COMMANDS) expect(r.stdout + r.stderr).toMatch(new RegExp(`\\n  ${c}\\b`));
    expect(r.report?.tf).toBe(false);
  });
});
