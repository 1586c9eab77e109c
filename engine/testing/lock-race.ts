/**
 * Six processes taking over one stale `run.lock` at the same moment (engine/store/locks.test.ts
 * and the fault run, engine/testing/fault-run.ts): each prints `won` when it owns the run, else
 * `lost: <why>`. The moment between judging the lock stale and removing it is widened to 300 ms,
 * where two takers could interleave.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { APP_ROOT } from '../core/app-paths.js';
import type { Project } from '../store/runs.js';

const TAKERS = 6;

/** Give a fresh run of `project` a stale lock (its owner's pid is dead), then race six takers for it; their outputs. */
export async function raceForStaleLock(project: Project, scratch: string): Promise<string[]> {
  const run = project.createRun('lm-pretrain', {}, { seed: 0 });
  const dead = spawnSync('true').pid!;
  run.update({ status: 'running', pid: dead });
  run.release();
  fs.writeFileSync(path.join(run.dir, 'run.lock'), JSON.stringify({ pid: dead, start: '1' }));
  const script = path.join(scratch, 'take.mts');
  fs.writeFileSync(
    script,
    [
      `import fs from 'node:fs';`,
      `import { syncBuiltinESMExports } from 'node:module';`,
      `const rm = fs.rmSync;`,
      `fs.rmSync = (p, o) => { if (String(p).endsWith('run.lock')) { const t = Date.now() + 300; while (Date.now() < t); } return rm(p, o); };`,
      `syncBuiltinESMExports();`,
      `const { Project } = await import(${JSON.stringify(path.join(APP_ROOT, 'engine', 'store', 'runs.ts'))});`,
      `const [dir, id, go] = process.argv.slice(2);`,
      `const run = Project.open(dir).run(id);`,
      `await new Promise((r) => setTimeout(r, Number(go) - Date.now()));`,
      `try { run.acquire(); process.stdout.write('won'); await new Promise((r) => setTimeout(r, 3000)); }`,
      `catch (e) { process.stdout.write('lost: ' + e.message); }`,
    ].join('\n'),
  );
  const go = Date.now() + 8000; // every taker started and waiting
  return Promise.all(
    Array.from(
      { length: TAKERS },
      () =>
        new Promise<string>((resolve) => {
          const p = spawn(process.execPath, ['--import', 'tsx', script, project.dir, run.id, String(go)], { stdio: ['ignore', 'pipe', 'ignore'] });
          let out = '';
          p.stdout.on('data', (d: Buffer) => (out += d.toString()));
          p.once('exit', () => resolve(out));
        }),
    ),
  );
}
