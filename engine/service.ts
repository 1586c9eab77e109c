/**
 * The engine service: answers protocol requests against a project and its job queue, and
 * forwards the queue's events. Transports (in-process, WebSocket, MessagePort) hand it raw
 * messages; it validates them, so a message that does not fit gets an error and changes nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { currentBackend } from './backend/backend.js';
import { appPath } from './core/app-paths.js';
import { asNormLabError, fail } from './core/errors.js';
import { NORMLAB_VERSION } from './core/versions.js';
import './jobs/all.js';
import { cancelEverywhere, childStates } from './jobs/children.js';
import { readConfigFile, resolveConfig } from './jobs/config.js';
import { presetsFor } from './jobs/presets.js';
import { JobQueue } from './jobs/queue.js';
import { checkInputPath } from './jobs/paths.js';
import { jobKind, jobKinds } from './jobs/registry.js';
import { parseRequest, PROTOCOL_VERSION, type EngineEvent, type RequestParams, type RequestType, type Response, type RunSummary } from './protocol/protocol.js';
import { Project, type Run } from './store/runs.js';

/** Folder of example job configs shipped with NormLab. */
export const EXAMPLES_DIR = appPath('assets', 'examples');

export function runSummary(run: Run): RunSummary {
  const summary = run.readSummary();
  const kr = summary?.key_result as { label: string; value: number } | undefined;
  return {
    id: run.id,
    method: run.record.method,
    name: run.record.name,
    status: run.status,
    backend: run.record.backend,
    created: run.record.created,
    finished: run.record.finished,
    tags: run.record.tags,
    parent: run.record.parent,
    keyResult: kr && typeof kr.value === 'number' ? kr : null,
    error: run.record.error,
    config: flatScalars(run.record.config),
    metrics: Object.fromEntries(Object.entries(summary ?? {}).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]))),
  };
}

/** Nested config → dotted keys with scalar values (lists of scalars joined by commas). */
function flatScalars(obj: unknown, prefix = '', out: Record<string, string | number | boolean | null> = {}): Record<string, string | number | boolean | null> {
  if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) flatScalars(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (Array.isArray(obj)) {
    if (obj.every((v) => v === null || typeof v !== 'object')) out[prefix] = obj.join(', ');
  } else if (obj === null || typeof obj !== 'object') out[prefix] = obj as string | number | boolean | null;
  return out;
}

/** Does this job kind run child runs (a study or sweep)? */
function isParentKind(method: string): boolean {
  try {
    return jobKind(method).parent === true;
  } catch {
    return false;
  }
}

type Handlers = { [T in RequestType]: (p: RequestParams<T>) => Promise<unknown> | unknown };

export class EngineService {
  private readonly handlers: Handlers;

  constructor(readonly queue: JobQueue) {
    this.handlers = {
      hello: () => ({ version: NORMLAB_VERSION, protocol: PROTOCOL_VERSION, backend: currentBackend(), project: this.queue.project.dir }),
      'project.open': ({ dir }) => {
        if (this.queue.isBusy()) fail('state', 'cannot switch projects while a run is queued or running');
        this.queue.project = Project.open(dir);
        return { project: this.queue.project.dir };
      },
      'runs.list': () => this.queue.project.listRuns().map(runSummary),
      'run.get': ({ runId }) => {
        const project = this.queue.project;
        const run = project.run(runId);
        const artifacts = run.artifacts();
        const folders = artifacts.filter((a) => fs.statSync(path.join(run.artifactsDir, a)).isDirectory());
        // A study's or sweep's children, wherever they run (this engine, other processes, Slurm).
        const children = isParentKind(run.record.method) ? childStates(project, run) : [];
        return { summary: runSummary(run), record: run.record, result: run.readSummary(), artifacts, folders, children };
      },
      'run.metrics': ({ runId, since }) =>
        this.queue.project
          .run(runId)
          .readMetrics()
          .slice(since ?? 0),
      'run.start': ({ config, backend }) => ({ runId: this.queue.enqueue(config, undefined, backend).id }),
      'run.cancel': ({ runId }) => {
        // A run of another process or on Slurm (a parent whose children were submitted) is cancelled where it runs.
        if (this.queue.owns(runId)) this.queue.cancel(runId);
        else if (isParentKind(this.queue.project.run(runId).record.method)) cancelEverywhere(this.queue.project, this.queue.project.run(runId));
        else this.queue.cancel(runId);
        return { runId };
      },
      'run.resume': ({ runId }) => ({ runId: this.queue.resume(runId).id }),
      'run.artifact': ({ runId, name }) => {
        const file = path.join(this.queue.project.run(runId).artifactsDir, name);
        if (!fs.existsSync(file)) fail('not-found', `run ${runId} has no artifact ${name}`);
        const bytes = fs.readFileSync(file);
        return { name, base64: bytes.toString('base64') };
      },
      'run.tags': ({ runId, tags }) => {
        const run = this.queue.project.run(runId);
        run.update({ tags });
        return runSummary(run);
      },
      'run.folder': ({ runId, name }) => {
        const dir = path.join(this.queue.project.run(runId).artifactsDir, name);
        if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) fail('not-found', `run ${runId} has no artifact folder ${name}`);
        const entries = fs
          .readdirSync(dir, { withFileTypes: true })
          .filter((e) => !e.name.startsWith('.'))
          .map((e) => ({ name: e.name, folder: e.isDirectory(), bytes: e.isDirectory() ? null : fs.statSync(path.join(dir, e.name)).size }))
          .sort((a, b) => a.name.localeCompare(b.name));
        return { name, entries };
      },
      'paths.check': ({ paths }) => paths.map((p) => checkInputPath(p)),
      'jobs.kinds': () =>
        jobKinds().map((k) => {
          // Kinds with required inputs (a model folder, a run) have no complete default config:
          // the form fills in the schema's own field defaults and marks the required ones.
          const bare = k.schema.safeParse({ method: k.name });
          return {
            name: k.name,
            title: k.title,
            description: k.description,
            resumable: k.resumable,
            jsonSchema: z.toJSONSchema(k.schema, { io: 'input', unrepresentable: 'any' }),
            defaults: bare.success ? bare.data : { method: k.name },
            required: bare.success ? [] : [...new Set(bare.error.issues.map((i) => i.path.join('.')))],
            // Recipe presets: the form fills a chosen preset's values in and sends `preset: <name>`.
            presets: presetsFor(k.name),
          };
        }),
      'config.validate': ({ config }) => {
        try {
          return { ok: true, config: resolveConfig(config) };
        } catch (err) {
          const e = asNormLabError(err);
          return { ok: false, error: { code: e.code, message: e.message } };
        }
      },
      'examples.list': () =>
        fs.existsSync(EXAMPLES_DIR)
          ? fs
              .readdirSync(EXAMPLES_DIR)
              .filter((f) => /\.(ya?ml|json)$/.test(f))
              .sort()
              .map((f) => ({ file: f, config: readConfigFile(path.join(EXAMPLES_DIR, f)) }))
          : [],
    };
  }

  onEvent(listener: (e: EngineEvent) => void): () => void {
    return this.queue.on(listener);
  }

  /** Validate and answer one raw message. Never throws. */
  async handle(raw: unknown): Promise<Response> {
    const parsed = parseRequest(raw);
    if (!parsed.ok) return { kind: 'response', id: parsed.id, ok: false, error: parsed.error };
    const { id, type, params } = parsed.request;
    try {
      const handler = this.handlers[type] as (p: unknown) => unknown;
      return { kind: 'response', id, ok: true, result: await handler(params) };
    } catch (err) {
      const e = asNormLabError(err);
      return { kind: 'response', id, ok: false, error: { code: e.code, message: e.message } };
    }
  }
}
