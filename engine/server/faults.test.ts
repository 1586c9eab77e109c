/**
 * Faults end in one line and the server goes on: a busy port, a second server on one project, a
 * damaged summary.json or an odd artifact (that run is damaged, the others listed as usual), a
 * client that does not read its answers (disconnected at a bound), a full disk while a run is
 * marked finished; and `run --dry-run` of a job without children checks it without training it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { NormLabError } from '../core/errors.js';
import { dryRun, formatDryRun } from '../jobs/dry-run.js';
import { JobQueue } from '../jobs/queue.js';
import { EngineService } from '../service.js';
import { Project, Run } from '../store/runs.js';
import { MAX_PENDING_REQUESTS, serve } from './serve.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
afterEach(() => vi.restoreAllMocks());

function tempProject(): Project {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-faults-'));
  dirs.push(d);
  fs.writeFileSync(path.join(d, 'index.html'), '<!doctype html>');
  return Project.open(path.join(d, 'project'));
}

const tiny = {
  method: 'lm-pretrain',
  model: { arch: 'llama', layers: 1, d_model: 16, heads: 2 },
  train: { steps: 2, batch: 2, seq: 16, warmup: 1, eval_every: 2, eval_windows: 1, log_every: 1 },
};

describe('serve', () => {
  it('a busy port and a second server on one project are refused with one line; closing frees both', async () => {
    const project = tempProject();
    const first = await serve(new EngineService(new JobQueue(project, 'cpu')), { port: 0, rendererDir: path.dirname(project.dir) });
    const other = tempProject();
    await expect(serve(new EngineService(new JobQueue(other, 'cpu')), { port: first.port, rendererDir: path.dirname(other.dir) })).rejects.toThrow(
      new NormLabError('io', `port ${first.port} on 127.0.0.1 is in use (another normlab serve?): choose another with --port N, or --port 0 for any free one`),
    );
    await expect(serve(new EngineService(new JobQueue(project, 'cpu')), { port: 0 })).rejects.toThrow(
      `project ${project.dir} is already open in process ${process.pid} (a \`normlab serve\` or the NormLab app); use that one, or stop it first`,
    );
    await first.close();
    const again = await serve(new EngineService(new JobQueue(project, 'cpu')), { port: 0, rendererDir: path.dirname(project.dir) });
    await again.close();
    // The refused server on a busy port left no lock on its project.
    (await serve(new EngineService(new JobQueue(other, 'cpu')), { port: 0 })).close();
  });

  it('a client that sends thousands of requests without reading is disconnected; another is answered at once', async () => {
    const project = tempProject();
    const served = await serve(new EngineService(new JobQueue(project, 'cpu')), { port: 0, rendererDir: path.dirname(project.dir) });
    try {
      const flood = new WebSocket(`ws://127.0.0.1:${served.port}/ws?token=${served.token}`);
      await new Promise((r) => flood.once('open', r));
      const closed = new Promise<number>((r) => flood.once('close', (code) => r(code)));
      flood.pause(); // reads nothing
      const msg = JSON.stringify({ kind: 'request', id: 1, type: 'examples.list', params: {} });
      for (let i = 0; i < 3000; i++) flood.send(msg);
      flood.resume();
      expect(await closed).toBe(1008);
      expect(3000).toBeGreaterThan(MAX_PENDING_REQUESTS);
      const ok = new WebSocket(`ws://127.0.0.1:${served.port}/ws?token=${served.token}`);
      await new Promise((r) => ok.once('open', r));
      const started = Date.now();
      const answer = await new Promise<Record<string, unknown>>((r) => {
        ok.on('message', (d) => r(JSON.parse(String(d)) as Record<string, unknown>));
        ok.send(JSON.stringify({ kind: 'request', id: 7, type: 'hello', params: {} }));
      });
      expect(answer).toMatchObject({ id: 7, ok: true });
      expect(Date.now() - started).toBeLessThan(5000);
      ok.close();
    } finally {
      await served.close();
    }
  }, 60_000);
});

describe('damaged files', () => {
  it('a truncated summary.json marks that run damaged; an odd artifact does not break run.get; the other runs list as usual', async () => {
    const project = tempProject();
    const service = new EngineService(new JobQueue(project, 'cpu'));
    const [good, bad] = [0, 1].map(() => {
      const r = project.createRun('lm-pretrain', {}, { seed: 0 });
      r.writeSummary({ final_val_loss: 2.5 });
      r.markFinished('completed');
      return r;
    });
    fs.writeFileSync(path.join(bad.dir, 'summary.json'), '{"final_val_loss": 2.');
    fs.symlinkSync('/nonexistent/target', path.join(good.artifactsDir, 'dangling\nname.png'));
    const list = (await service.handle({ kind: 'request', id: 1, type: 'runs.list', params: {} })) as { ok: boolean; result: { id: string; status: string }[] };
    expect(list.ok).toBe(true);
    expect(Object.fromEntries(list.result.map((r) => [r.id, r.status]))).toEqual({ [good.id]: 'completed', [bad.id]: 'damaged' });
    const get = (await service.handle({ kind: 'request', id: 2, type: 'run.get', params: { runId: good.id } })) as {
      ok: boolean;
      result: { folders: string[] };
    };
    expect(get).toMatchObject({ ok: true, result: { folders: [] } });
    expect(await service.handle({ kind: 'request', id: 3, type: 'run.get', params: { runId: bad.id } })).toMatchObject({
      ok: true,
      result: { summary: { status: 'damaged', error: { code: 'io' } }, result: null },
    });
  });
});

describe('a full disk while a run is marked finished', () => {
  it('the run reads as interrupted with one line, and the queue goes on with the next run', async () => {
    const q = new JobQueue(tempProject(), 'cpu');
    const states: { status: string; message?: string }[] = [];
    q.on((e) => void (e.event === 'run-state' && states.push({ status: e.status, message: e.error?.message })));
    const markFinished = vi.spyOn(Run.prototype, 'markFinished');
    markFinished.mockImplementationOnce(() => {
      throw new NormLabError('io', 'cannot write run.json: no space left on device');
    });
    markFinished.mockImplementationOnce(() => {
      throw new NormLabError('io', 'cannot write run.json: no space left on device');
    });
    const full = q.enqueue(tiny);
    await q.wait(full.id);
    expect(states.at(-1)).toEqual({
      status: 'interrupted',
      message: `could not record the end of run ${full.id}: cannot write run.json: no space left on device; it reads as interrupted (normlab resume continues it)`,
    });
    expect(q.project.run(full.id).status).toBe('interrupted');
    const next = q.enqueue(tiny);
    await q.wait(next.id);
    expect(q.project.run(next.id).status).toBe('completed');
  }, 60_000);
});

describe('run --dry-run', () => {
  it('of a job without children checks its config and trains nothing', async () => {
    const r = await dryRun({ ...tiny, train: { ...tiny.train, steps: 10_000_000 } }, tempProject().dir, 'cpu');
    expect(r).toEqual({ method: 'lm-pretrain', stages: [] });
    expect(formatDryRun(r)).toContain('nothing was run');
    await expect(dryRun({ ...tiny, train: { stepz: 3 } }, tempProject().dir, 'cpu')).rejects.toThrow(/stepz/);
  }, 10_000);
});
