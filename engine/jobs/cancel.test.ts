/**
 * Cancel is a stop with a checkpoint, whoever asks: the workbench (`run.cancel`) and `normlab
 * cancel` from another process end a run at its next step boundary with a checkpoint of the step
 * it reached, exactly as SIGTERM does, and the run ends `cancelled`; resuming it gives the summary
 * of an uninterrupted run. `normlab cancel` on a run a server executes asks that server to cancel
 * it; the server lives on.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { CLI_ENTRY } from '../core/app-paths.js';
import './all.js';
import { EngineService } from '../service.js';
import { Project, type Run } from '../store/runs.js';
import { runToEnd, tempQueue } from '../train/resume-harness.js';
import { cancelEverywhere } from './children.js';
import { resolveConfig } from './config.js';

/** 400 steps of a tiny LLaMA with no periodic checkpoint before the final one. */
const config = {
  method: 'lm-pretrain',
  seed: 5,
  model: { arch: 'llama', layers: 1, d_model: 32, heads: 2 },
  train: { steps: 400, batch: 4, seq: 16, warmup: 2, lr: 3e-3, eval_every: 1000, eval_windows: 2, checkpoint_every: 1000, log_every: 1 },
};

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const lastLoggedStep = (run: Run) => Math.max(0, ...run.readMetrics().flatMap((m) => (typeof m.loss === 'number' ? [m.step as number] : [])));

async function until(what: string, ok: () => boolean, ms = 90_000): Promise<void> {
  for (const end = Date.now() + ms; !ok();) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let straightLoss: number | undefined;
async function uninterruptedLoss(): Promise<number> {
  straightLoss ??= (await runToEnd(tempQueue('cancel-straight-'), config)).readSummary()!.final_val_loss as number;
  return straightLoss;
}

describe('cancel', () => {
  it('from the workbench (run.cancel) checkpoints the step reached; resume ends as an uninterrupted run', async () => {
    const q = tempQueue('cancel-ui-');
    dirs.push(q.project.dir);
    const service = new EngineService(q);
    const started = await service.handle({ kind: 'request', id: 1, type: 'run.start', params: { config } });
    const runId = (started as { result: { runId: string } }).result.runId;
    await until('step 10', () => lastLoggedStep(q.project.run(runId)) >= 10);
    expect(await service.handle({ kind: 'request', id: 2, type: 'run.cancel', params: { runId } })).toMatchObject({ ok: true });
    await q.wait(runId);
    const cancelled = q.project.run(runId);
    expect(cancelled.status).toBe('cancelled');
    const reached = lastLoggedStep(cancelled);
    expect(reached).toBeLessThan(400);
    expect(cancelled.latestCheckpoint()?.step).toBe(reached);

    await service.handle({ kind: 'request', id: 3, type: 'run.resume', params: { runId } });
    await q.wait(runId);
    const resumed = q.project.run(runId);
    expect(resumed.status).toBe('completed');
    expect(resumed.record.resumes).toEqual([reached]);
    expect(resumed.readSummary()!.final_val_loss).toBe(await uninterruptedLoss());
  }, 180_000);

  it('normlab cancel on a run a server executes cancels that run with a checkpoint, and the server lives on', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cancel-cli-'));
    dirs.push(dir);
    // A server process like `normlab serve` (without the renderer build).
    const script = path.join(dir, 'server.mts');
    const engine = path.dirname(path.dirname(CLI_ENTRY));
    fs.writeFileSync(
      script,
      [
        `import { JobQueue } from ${JSON.stringify(path.join(engine, 'engine/jobs/queue.ts'))};`,
        `import { EngineService } from ${JSON.stringify(path.join(engine, 'engine/service.ts'))};`,
        `import { serve } from ${JSON.stringify(path.join(engine, 'engine/server/serve.ts'))};`,
        `import { Project } from ${JSON.stringify(path.join(engine, 'engine/store/runs.ts'))};`,
        `const s = await serve(new EngineService(new JobQueue(Project.open(process.argv[2]), 'wasm')), { port: 0, rendererDir: process.argv[2] });`,
        `process.stdout.write(JSON.stringify({ port: s.port, token: s.token }) + '\\n');`,
      ].join('\n'),
    );
    const project = path.join(dir, 'project');
    const server = spawn(process.execPath, ['--import', 'tsx', script, project], { stdio: ['ignore', 'pipe', 'pipe'], cwd: engine });
    let stderr = '';
    server.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const { port, token } = await new Promise<{ port: number; token: string }>((resolve, reject) => {
        server.stdout.once('data', (d: Buffer) => resolve(JSON.parse(d.toString())));
        server.once('exit', () => reject(new Error(`the server exited: ${stderr}`)));
      });
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`);
      await new Promise((r) => ws.once('open', r));
      const ask = (id: number, type: string, params: unknown) =>
        new Promise<Record<string, unknown>>((resolve) => {
          const on = (data: unknown) => {
            const m = JSON.parse(String(data)) as Record<string, unknown>;
            if (m.kind === 'response' && m.id === id) {
              ws.off('message', on);
              resolve(m);
            }
          };
          ws.on('message', on);
          ws.send(JSON.stringify({ kind: 'request', id, type, params }));
        });
      const runId = ((await ask(1, 'run.start', { config })).result as { runId: string }).runId;
      const store = Project.open(project);
      await until('step 10', () => lastLoggedStep(store.run(runId)) >= 10);

      // What `normlab cancel RUN` does from its own process.
      expect(cancelEverywhere(store, store.run(runId))).toEqual([expect.stringMatching(/^cancel requested: /)]);
      await until('the cancel', () => store.run(runId).status === 'cancelled');
      expect(server.exitCode, stderr).toBeNull();
      expect(await ask(2, 'hello', {})).toMatchObject({ ok: true });
      const cancelled = store.run(runId);
      const reached = lastLoggedStep(cancelled);
      expect(reached).toBeLessThan(400);
      expect(cancelled.latestCheckpoint()?.step).toBe(reached);

      expect(await ask(3, 'run.resume', { runId })).toMatchObject({ ok: true });
      await until('the resumed run', () => store.run(runId).status === 'completed');
      expect(store.run(runId).readSummary()!.final_val_loss).toBe(await uninterruptedLoss());
      ws.close();
    } finally {
      server.kill('SIGKILL');
    }
  }, 240_000);

  it('a resume with no checkpoint to continue from says it starts again from step 0', async () => {
    const q = tempQueue('cancel-early-');
    dirs.push(q.project.dir);
    const logs: string[] = [];
    q.on((e) => void (e.event === 'log' && logs.push(e.message)));
    const resolved = resolveConfig({ ...config, train: { ...config.train, steps: 4 } });
    const run = q.project.createRun(resolved.method, resolved, { seed: resolved.seed });
    run.markRunning('wasm');
    run.markFinished('interrupted');
    q.resume(run.id);
    await q.wait(run.id);
    expect(q.project.run(run.id).status).toBe('completed');
    expect(logs.join('\n')).toContain('no checkpoint yet: it starts again from step 0');
  }, 60_000);
});
