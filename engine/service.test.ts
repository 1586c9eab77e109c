import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend/backend.js';
import { JobQueue } from './jobs/queue.js';
import type { EngineEvent } from './protocol/protocol.js';
import { EngineService } from './service.js';
import { Project } from './store/runs.js';

beforeAll(async () => {
  await initBackend('wasm');
});

function service(): EngineService {
  return new EngineService(new JobQueue(Project.open(fs.mkdtempSync(path.join(os.tmpdir(), 'svc-'))), 'wasm'));
}

describe('engine service (protocol boundary)', () => {
  it('answers messages that do not fit the protocol with a protocol error and keeps working', async () => {
    const s = service();
    const bad: unknown[] = [
      null,
      'hello',
      { kind: 'request', id: 1 },
      { kind: 'request', id: 2, type: 'rm -rf' },
      { kind: 'request', id: 3, type: 'run.get', params: { runId: '../../etc' } },
      { kind: 'request', id: 4, type: 'hello', params: { extra: 1 } },
    ];
    for (const m of bad) {
      const r = await s.handle(m);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.code).toBe('protocol');
    }
    const ok = await s.handle({ kind: 'request', id: 9, type: 'hello' });
    expect(ok).toMatchObject({ id: 9, ok: true });
  });

  it('starts a run, streams its events, and lists it with its key result', async () => {
    const s = service();
    const events: EngineEvent[] = [];
    s.onEvent((e) => events.push(e));
    const config = {
      method: 'lm-pretrain',
      model: { layers: 1, d_model: 16, heads: 2 },
      train: { steps: 6, batch: 2, seq: 16, warmup: 1, eval_every: 3, eval_windows: 2, checkpoint_every: 6, log_every: 1 },
    };
    const started = await s.handle({ kind: 'request', id: 1, type: 'run.start', params: { config } });
    expect(started.ok).toBe(true);
    const runId = (started as { result: { runId: string } }).result.runId;
    await s.queue.wait(runId);
    expect(events.filter((e) => e.event === 'metric').length).toBeGreaterThan(5);
    expect(events.filter((e) => e.event === 'run-state').map((e) => (e as { status: string }).status)).toEqual(['queued', 'running', 'completed']);
    const list = await s.handle({ kind: 'request', id: 2, type: 'runs.list' });
    expect((list as { result: { keyResult: { label: string } }[] }).result[0].keyResult?.label).toBe('val loss');
    const metrics = await s.handle({ kind: 'request', id: 3, type: 'run.metrics', params: { runId, since: 2 } });
    expect((metrics as { result: unknown[] }).result.length).toBeGreaterThan(3);
  });

  it('runs a run on the backend its run.start asked for, recorded with its detail; an unknown backend is a protocol error', async () => {
    const s = service();
    const config = {
      method: 'lm-pretrain',
      model: { layers: 1, d_model: 8, heads: 2 },
      train: { steps: 1, batch: 1, seq: 8, warmup: 0, eval_every: 1, eval_windows: 1, checkpoint_every: 1 },
    };
    const started = await s.handle({ kind: 'request', id: 1, type: 'run.start', params: { config, backend: 'cpu' } });
    const runId = (started as { result: { runId: string } }).result.runId;
    await s.queue.wait(runId);
    const run = s.queue.project.run(runId);
    expect(run.status).toBe('completed');
    expect(run.record.backend).toBe('cpu');
    expect(run.record.backendDetail).toBe('cpu (pure JavaScript)');
    const bad = await s.handle({ kind: 'request', id: 2, type: 'run.start', params: { config, backend: 'cuda' } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.code).toBe('protocol');
  });

  it('validates configs for the form without starting anything', async () => {
    const s = service();
    const r = await s.handle({ kind: 'request', id: 1, type: 'config.validate', params: { config: { method: 'lm-pretrain', train: { lr: -1 } } } });
    expect((r as { result: { ok: boolean; error: { message: string } } }).result).toMatchObject({
      ok: false,
      error: { message: expect.stringMatching(/train\.lr/) },
    });
    const kinds = await s.handle({ kind: 'request', id: 2, type: 'jobs.kinds' });
    const lm = (kinds as { result: { name: string; defaults: { train: { steps: number } } }[] }).result.find((k) => k.name === 'lm-pretrain');
    expect(lm?.defaults.train.steps).toBe(200);
    const dla = (kinds as { result: { name: string; defaults: unknown; required: string[] }[] }).result.find((k) => k.name === 'dla');
    expect(dla).toMatchObject({ defaults: { method: 'dla' }, required: ['model'] });
    // Recipe presets travel with their kind, each with its description, source and values.
    const lmPresets = (kinds as { result: { name: string; presets: { name: string; source: string; config: { model: { layers: number } } }[] }[] }).result.find(
      (k) => k.name === 'lm-pretrain',
    )!.presets;
    expect(lmPresets.map((p) => p.name)).toEqual(['lns-paper-130m', 'lns-paper-250m', 'lns-paper-350m', 'lns-paper-1b']);
    expect(lmPresets[3]).toMatchObject({ source: expect.stringMatching(/run_1b\.sh/), config: { model: { layers: 24 } } });
  });

  it('lists an artifact folder, checks input paths, puts heads/d_model errors on heads, and gives run summaries their config and numbers', async () => {
    const s = service();
    const run = s.queue.project.createRun('lm-pretrain', { method: 'lm-pretrain', train: { steps: 5, lr: 0.01 }, tags: ['a', 'b'] }, { seed: 0 });
    fs.mkdirSync(path.join(run.artifactsDir, 'model'), { recursive: true });
    fs.writeFileSync(path.join(run.artifactsDir, 'model', 'config.json'), '{}');
    run.writeSummary({ final_val_loss: 3.5, note: 'x' });
    const folder = await s.handle({ kind: 'request', id: 1, type: 'run.folder', params: { runId: run.id, name: 'model' } });
    expect(folder).toMatchObject({ ok: true, result: { name: 'model', entries: [{ name: 'config.json', folder: false, bytes: 2 }] } });
    const notFolder = await s.handle({ kind: 'request', id: 2, type: 'run.folder', params: { runId: run.id, name: 'nope' } });
    expect(notFolder).toMatchObject({ ok: false, error: { code: 'not-found' } });
    const detail = await s.handle({ kind: 'request', id: 3, type: 'run.get', params: { runId: run.id } });
    expect((detail as { result: { folders: string[] } }).result.folders).toEqual(['model']);
    const checked = await s.handle({
      kind: 'request',
      id: 4,
      type: 'paths.check',
      params: { paths: [run.artifactsDir, path.join(run.artifactsDir, 'missing.txt')] },
    });
    expect((checked as { result: { ok: boolean; kind?: string }[] }).result.map((r) => [r.ok, r.kind])).toEqual([
      [true, 'folder'],
      [false, undefined],
    ]);
    const list = (await s.handle({ kind: 'request', id: 5, type: 'runs.list' })) as {
      result: { config: Record<string, unknown>; metrics: Record<string, number> }[];
    };
    expect(list.result[0].config).toMatchObject({ 'train.steps': 5, 'train.lr': 0.01, tags: 'a, b' });
    expect(list.result[0].metrics).toEqual({ final_val_loss: 3.5 });
    const heads = await s.handle({
      kind: 'request',
      id: 6,
      type: 'config.validate',
      params: { config: { method: 'lm-pretrain', model: { d_model: 30, heads: 4 } } },
    });
    expect((heads as { result: { error: { message: string } } }).result.error.message).toMatch(/model\.heads: heads 4 must divide d_model 30/);
  });

  it('never rejects, even for a request type named like an Object property', async () => {
    const s = service();
    for (const type of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'project.open']) {
      const r = await s.handle({ kind: 'request', id: 5, type, params: {} });
      expect(r).toMatchObject({ id: 5, ok: false, error: { code: 'protocol', message: `unknown request type "${type}"` } });
    }
  });
});

describe('renderer confinement', () => {
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'svc-outside-'));
  const secret = path.join(outside, 'secret.bin');
  fs.writeFileSync(secret, 'SECRET-PASSWORD!'); // an even number of bytes: readable as uint16 ids

  const validate = async (s: EngineService, config: Record<string, unknown>) =>
    (
      (await s.handle({ kind: 'request', id: 1, type: 'config.validate', params: { config } })) as {
        result: { ok: boolean; error?: { code: string; message: string } };
      }
    ).result;
  const lm = (data: Record<string, unknown>, model: Record<string, unknown> = {}) => ({
    method: 'lm-pretrain',
    model: { layers: 1, d_model: 16, heads: 2, ...model },
    data,
    train: { steps: 2, batch: 2, seq: 8, warmup: 1, eval_every: 2, eval_windows: 1, checkpoint_every: 2 },
  });

  it('refuses config paths outside the project, also through a symlink or .., in every path field', async () => {
    const s = service();
    const link = path.join(s.queue.project.dir, 'link-out');
    fs.symlinkSync(outside, link);
    const cases: [Record<string, unknown>, string][] = [
      [lm({ source: 'tokens', path: secret }), 'data.path'],
      [lm({ source: 'file', path: path.join(s.queue.project.dir, '..', path.basename(outside), 'secret.bin') }), 'data.path'],
      [lm({ source: 'tokens', path: path.join(link, 'secret.bin') }), 'data.path'],
      [lm({}, { init_from: outside }), 'model.init_from'],
      [{ method: 'dla', model: outside }, 'model'],
      [{ method: 'ln-removal', source: { kind: 'folder', path: outside } }, 'source.path'],
      [{ method: 'vit-train', data: { source: outside } }, 'data.source'],
      [{ method: 'lct-study', data: { source: 'folder', path: outside } }, 'data.path'],
      [{ method: 'lct', autoencoder: outside }, 'autoencoder'],
      [{ method: 'ptq-vit', model: outside, data: { source: 'mnist', eval_source: outside } }, 'model'],
    ];
    for (const [config, field] of cases) {
      const v = await validate(s, config);
      expect(v, field).toMatchObject({ ok: false, error: { code: 'access', message: expect.stringContaining(`config ${field}: `) } });
      const started = await s.handle({ kind: 'request', id: 2, type: 'run.start', params: { config } });
      expect(started).toMatchObject({ ok: false, error: { code: 'access' } });
    }
    // A sweep's grid points, and the executor's shell fields.
    const sweep = await validate(s, {
      method: 'sweep',
      base: lm({ source: 'tokens', path: path.join(s.queue.project.dir, 'x.bin') }),
      grid: { 'data.path': [secret] },
    });
    expect(sweep).toMatchObject({ ok: false, error: { code: 'access', message: expect.stringContaining('config data.path: ') } });
    const shell = await validate(s, { method: 'sweep', base: lm({}), executor: { kind: 'local', engine_command: 'rm -rf ~' } });
    expect(shell).toMatchObject({
      ok: false,
      error: { code: 'access', message: expect.stringContaining('config executor.engine_command: shell commands cannot be set') },
    });
    expect(s.queue.project.listRuns()).toHaveLength(0);
    // An artifact that is a symlink out of the run is not an artifact.
    const run = s.queue.project.createRun('lm-pretrain', {}, { seed: 0 });
    run.markFinished('completed');
    fs.symlinkSync(secret, path.join(run.artifactsDir, 'table.csv'));
    const artifact = await s.handle({ kind: 'request', id: 4, type: 'run.artifact', params: { runId: run.id, name: 'table.csv' } });
    expect(artifact).toMatchObject({ ok: false, error: { code: 'not-found', message: `run ${run.id} has no artifact table.csv` } });
    // Names that are not paths, and paths inside the project, pass.
    expect((await validate(s, { method: 'vit-train', data: { source: 'mnist' } })).ok).toBe(true);
    expect((await validate(s, { method: 'ln-removal', source: { kind: 'run', path: 'some-run' } })).ok).toBe(true);
    expect((await validate(s, lm({ source: 'tokens', path: path.join(s.queue.project.dir, 'data', 'x.bin') }))).ok).toBe(true);
  });

  it('accepts paths in a granted folder, and its error for a bad token file quotes none of the bytes', async () => {
    const s = service();
    s.grant(outside);
    expect((await validate(s, lm({ source: 'tokens', path: secret }))).ok).toBe(true);
    const started = (await s.handle({
      kind: 'request',
      id: 3,
      type: 'run.start',
      params: { config: lm({ source: 'tokens', path: secret }, { arch: 'gpt2' }) },
    })) as {
      result: { runId: string };
    };
    await s.queue.wait(started.result.runId);
    const error = s.queue.project.run(started.result.runId).record.error;
    expect(error?.message).toMatch(/position 0 .*vocabulary/);
    const bytes = Buffer.from('SECRET-PASSWORD!');
    for (let i = 0; i < bytes.length; i += 2) expect(error?.message).not.toContain(String(bytes.readUInt16LE(i)));
    expect(error?.message).not.toMatch(/SECRET/);
  });
});
