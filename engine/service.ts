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
import { checkInputPath, configPaths } from './jobs/paths.js';
import { jobKind, jobKinds } from './jobs/registry.js';
import { sweepChildren, type SweepConfig } from './jobs/sweep.js';
import { parseRequest, PROTOCOL_VERSION, type EngineEvent, type RequestParams, type RequestType, type Response, type RunSummary } from './protocol/protocol.js';
import type { KeyResult } from './stats/stats.js';
import { assertAllowedPath } from './store/access.js';
import { type Run } from './store/runs.js';

/** Folder of example job configs shipped with NormLab. */
export const EXAMPLES_DIR = appPath('assets', 'examples');

/**
 * A run's summary.json, or why it cannot be read (a truncated or hand-edited file): such a run
 * is listed as damaged, with the reason as its error, and every other run as usual.
 */
export function readSummarySafely(run: Run): { summary: Record<string, unknown> | null; damage: string | null } {
  try {
    return { summary: run.readSummary(), damage: null };
  } catch (err) {
    return { summary: null, damage: asNormLabError(err).message };
  }
}

export function runSummary(run: Run): RunSummary {
  const { summary, damage } = readSummarySafely(run);
  const kr = summary?.key_result as KeyResult | undefined;
  const warnings = summary?.warnings;
  return {
    id: run.id,
    method: run.record.method,
    name: run.record.name,
    status: damage ? 'damaged' : run.status,
    backend: run.record.backend,
    created: run.record.created,
    finished: run.record.finished,
    tags: run.record.tags,
    parent: run.record.parent,
    keyResult: kr && typeof kr.value === 'number' ? kr : null,
    warnings: Array.isArray(warnings) ? warnings.filter((w) => typeof w === 'string').length : 0,
    error: damage ? { code: 'io', message: damage } : run.record.error,
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

/** Executor fields that run shell commands (engine/jobs/executor.ts). */
const SHELL_FIELDS = ['engine_command', 'setup', 'extra_args'];

function refuseShellFields(value: unknown, at: string[]): void {
  if (typeof value !== 'object' || value === null || at.length > 32) return;
  for (const [k, v] of Object.entries(value)) {
    const set = v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
    if (at.at(-1) === 'executor' && SHELL_FIELDS.includes(k) && set)
      fail('access', `config ${[...at, k].join('.')}: shell commands cannot be set from the workbench; run this config with normlab run`);
    refuseShellFields(v, [...at, k]);
  }
}

type Handlers = { [T in RequestType]: (p: RequestParams<T>) => Promise<unknown> | unknown };

export interface ServiceOptions {
  /** Folders besides the project that renderer-sent paths may name (`normlab serve --allow DIR`). */
  allow?: string[];
}

/**
 * The service answers a renderer, which may not name files outside the project and the granted
 * folders (engine/store/access.ts); the CLI runs jobs through the queue directly.
 */
export class EngineService {
  private readonly handlers: Handlers;
  private readonly granted: string[];

  constructor(
    readonly queue: JobQueue,
    opts: ServiceOptions = {},
  ) {
    this.granted = [...(opts.allow ?? [])];
    this.handlers = {
      hello: () => ({ version: NORMLAB_VERSION, protocol: PROTOCOL_VERSION, backend: currentBackend(), project: this.queue.project.dir }),
      'runs.list': () => this.queue.project.listRuns().map(runSummary),
      'run.get': ({ runId }) => {
        const project = this.queue.project;
        const run = project.run(runId);
        const artifacts = run.artifacts();
        // An entry that cannot be looked at (a dangling link, an odd name) is listed, as no folder.
        const folders = artifacts.filter((a) => {
          try {
            return fs.statSync(path.join(run.artifactsDir, a)).isDirectory();
          } catch {
            return false;
          }
        });
        // A study's or sweep's children, wherever they run (this engine, other processes, Slurm).
        const children = isParentKind(run.record.method) ? childStates(project, run) : [];
        return { summary: runSummary(run), record: run.record, result: readSummarySafely(run).summary, artifacts, folders, children };
      },
      'run.metrics': ({ runId, since }) =>
        this.queue.project
          .run(runId)
          .readMetrics()
          .slice(since ?? 0),
      'run.start': ({ config, backend }) => {
        this.checkPaths(config);
        return { runId: this.queue.enqueue(config, undefined, backend).id };
      },
      'run.cancel': ({ runId }) => {
        // A run of another process or on Slurm (a parent whose children were submitted) is cancelled where it runs.
        if (this.queue.owns(runId)) this.queue.cancel(runId);
        else if (cancelEverywhere(this.queue.project, this.queue.project.run(runId)).length === 0) fail('state', `run ${runId} is not queued or running`);
        return { runId };
      },
      'run.resume': ({ runId }) => ({ runId: this.queue.resume(runId).id }),
      'run.artifact': ({ runId, name }) => ({ name, base64: this.queue.project.run(runId).readArtifact(name).toString('base64') }),
      'run.tags': ({ runId, tags }) => {
        const run = this.queue.project.run(runId);
        run.update({ tags });
        return runSummary(run);
      },
      'run.folder': ({ runId, name }) => {
        const dir = this.queue.project.run(runId).artifactPath(name, 'folder');
        const entries = fs
          .readdirSync(dir, { withFileTypes: true })
          .filter((e) => !e.name.startsWith('.'))
          .map((e) => ({ name: e.name, folder: e.isDirectory(), bytes: e.isDirectory() ? null : fs.statSync(path.join(dir, e.name)).size }))
          .sort((a, b) => a.name.localeCompare(b.name));
        return { name, entries };
      },
      // Outside the project and the granted folders a path is refused before anything looks at it.
      'paths.check': ({ paths }) =>
        paths.map((p) => {
          try {
            this.assertAllowedPath(p, 'path');
          } catch (err) {
            return { path: p, ok: false, error: asNormLabError(err).message };
          }
          return checkInputPath(p);
        }),
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
          const resolved = resolveConfig(config);
          this.checkPaths(resolved);
          return { ok: true, config: resolved };
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

  /** Let renderer-sent paths name files under `dir` too (a folder the user picked in a dialog). */
  grant(dir: string): void {
    this.granted.push(path.resolve(dir));
  }

  /** Throw an `access` error unless `p` lies inside the project or a granted folder. */
  assertAllowedPath(p: string, what: string): string {
    return assertAllowedPath(p, [this.queue.project.dir, ...this.granted], what);
  }

  /**
   * Every file or folder a config names must be one the renderer may name, in a sweep's grid
   * points too; and the executor's shell fields (engine_command, setup, extra_args) cannot come
   * from the renderer at all: they run commands. The CLI may set them.
   */
  private checkPaths(raw: Record<string, unknown>): void {
    const config = resolveConfig(raw);
    for (const { field, value } of configPaths(jobKind(config.method).schema, config)) this.assertAllowedPath(value, `config ${field}`);
    refuseShellFields(raw, []);
    if (config.method === 'sweep') for (const child of sweepChildren(config as unknown as SweepConfig)) this.checkPaths(child.config);
  }

  /** Validate and answer one raw message. Never throws: whatever fails becomes an error response. */
  async handle(raw: unknown): Promise<Response> {
    let id = -1;
    try {
      const parsed = parseRequest(raw);
      if (!parsed.ok) return { kind: 'response', id: parsed.id, ok: false, error: parsed.error };
      id = parsed.request.id;
      const handler = this.handlers[parsed.request.type] as (p: unknown) => unknown;
      return { kind: 'response', id, ok: true, result: await handler(parsed.request.params) };
    } catch (err) {
      const e = asNormLabError(err);
      return { kind: 'response', id, ok: false, error: { code: e.code, message: e.message } };
    }
  }
}
