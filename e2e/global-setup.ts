/**
 * Before the e2e suite: build the renderer if it is missing or older than its sources, make a temp
 * project, run every fixture config (`e2e/fixtures/*.yaml`, each small) through the CLI into it,
 * and start `normlab serve` on a free port. A fixture whose job kind is not registered is
 * recorded with that reason; its method test skips saying so.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureRenderer } from '../bin/build-renderer.mjs';
import { ROOT, STATE_FILE, TMP, startServe, type E2EState, type FixtureRun } from './helpers';

function runFixture(file: string, project: string): FixtureRun {
  const text = fs.readFileSync(file, 'utf8');
  const method = /^method:\s*([\w-]+)/m.exec(text)?.[1] ?? '?';
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'normlab.js'), 'run', file, '--project', project, '--json'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 180_000,
  });
  const seconds = (Date.now() - t0) / 1000;
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('{'));
  const errLine =
    (r.stderr ?? '')
      .split('\n')
      .filter((l) => l.startsWith('normlab:'))
      .pop() ?? null;
  if (line) {
    const body = JSON.parse(line) as { runId: string; status: string; error?: { message: string } | null };
    return {
      fixture: path.basename(file),
      method,
      runId: body.runId,
      status: body.status,
      error: body.status === 'completed' ? null : (body.error?.message ?? errLine),
      seconds,
    };
  }
  return {
    fixture: path.basename(file),
    method,
    runId: null,
    status: 'not-run',
    error: errLine ?? `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}`,
    seconds,
  };
}

export default async function globalSetup(): Promise<void> {
  const built = ensureRenderer();
  if (built.error) throw new Error(built.error);
  fs.mkdirSync(TMP, { recursive: true });
  const project = fs.mkdtempSync(path.join(TMP, 'e2e-project-'));
  const dir = path.join(ROOT, 'e2e', 'fixtures');
  const only = process.env.NORMLAB_E2E_FIXTURES?.split(',');
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && (!only || only.some((o) => f.startsWith(o))))
    .sort();
  // The depth-study fixture's model folders: tiny random checkpoints of three families, made offline.
  for (const family of ['llama', 'gemma2', 'gpt2'])
    spawnSync(
      process.execPath,
      [path.join(ROOT, 'bin', 'normlab.js'), 'make-tiny-hf', family, path.join(TMP, 'tiny-hf', family), '--layers', '6', '--width', '32'],
      {
        cwd: ROOT,
      },
    );
  const fixtures: FixtureRun[] = [];
  for (const f of files) {
    const r = runFixture(path.join(dir, f), project);
    fixtures.push(r);
    process.stderr.write(`e2e fixture ${f}: ${r.status} in ${r.seconds.toFixed(1)} s${r.error ? ` (${r.error})` : ''}\n`);
  }
  const served = await startServe(project);
  served.proc.stdout!.resume();
  served.proc.stderr!.resume();
  served.proc.unref();
  const token = new URL(served.url).searchParams.get('token') ?? '';
  const state: E2EState = { project, url: served.url, port: served.port, token, pid: served.proc.pid!, fixtures };
  fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
}
