/**
 * The one protocol between the renderer (or any client) and the engine, in one file both sides
 * import. Requests carry an id and get exactly one response; the engine also pushes events
 * (progress, metric, log, run-state). Every message is validated at the boundary with zod: a
 * message that does not fit is answered with a `protocol` error and changes nothing.
 *
 * Transports carry these objects unchanged: in-process (CLI, tests), WebSocket (browser mode),
 * MessagePort (Electron).
 */
import { z } from 'zod';
import type { KeyResult } from '../stats/stats.js';

/** The compute backends, in the order `auto` tries them (engine/backend/backend.ts). */
export const BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;

export const PROTOCOL_VERSION = 1;

const runId = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\w.-]+$/, 'a run id');

/** Each request type with its params schema. */
export const requestSchemas = {
  hello: z.object({}).strict(),
  'runs.list': z.object({}).strict(),
  'run.get': z.object({ runId }).strict(),
  'run.metrics': z.object({ runId, since: z.number().int().min(0).optional() }).strict(),
  'run.start': z
    .object({
      config: z.record(z.string(), z.unknown()),
      /** The compute backend for this run (default: the engine's, usually auto). */
      backend: z.enum(['auto', ...BACKEND_NAMES]).optional(),
    })
    .strict(),
  'run.cancel': z.object({ runId }).strict(),
  'run.resume': z.object({ runId }).strict(),
  'run.artifact': z.object({ runId, name: z.string().regex(/^[\w.-]+$/, 'an artifact file name') }).strict(),
  'run.tags': z.object({ runId, tags: z.array(z.string().max(64)).max(32) }).strict(),
  'run.folder': z.object({ runId, name: z.string().regex(/^[\w.-]+$/, 'an artifact folder name') }).strict(),
  'paths.check': z.object({ paths: z.array(z.string().max(4096)).max(64) }).strict(),
  'jobs.kinds': z.object({}).strict(),
  'config.validate': z.object({ config: z.record(z.string(), z.unknown()) }).strict(),
  'examples.list': z.object({}).strict(),
} as const;

export type RequestType = keyof typeof requestSchemas;
export type RequestParams<T extends RequestType> = z.infer<(typeof requestSchemas)[T]>;

export const requestEnvelope = z
  .object({
    kind: z.literal('request'),
    id: z.number().int().min(0),
    type: z.string().max(100),
    params: z.unknown().optional(),
  })
  .strict();

export type Request = { kind: 'request'; id: number; type: RequestType; params: unknown };

export interface ErrorInfo {
  code: string;
  message: string;
}

export type Response = { kind: 'response'; id: number; ok: true; result: unknown } | { kind: 'response'; id: number; ok: false; error: ErrorInfo };

/** `damaged`: the run's run.json cannot be read (the runs table shows why, in its error). */
export const RUN_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted', 'damaged'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** A run's `run.json` (README "Runs on disk"), as the store writes it and clients read it. */
export interface RunRecord {
  id: string;
  method: string;
  name: string;
  tags: string[];
  /** The full resolved config (defaults filled in). */
  config: Record<string, unknown>;
  seed: number;
  backend: string | null;
  /** What the backend ran on, e.g. the wasm build and native kernels, or the GPU adapter and its limits. */
  backendDetail?: string | null;
  status: RunStatus;
  created: string;
  started: string | null;
  finished: string | null;
  /** Process that owns a running run; used to detect runs whose process died. */
  pid: number | null;
  error: { code: string; message: string } | null;
  versions: Record<string, string>;
  /** Steps a resume restarted from, in order. */
  resumes: number[];
  /** Id of the study run this run belongs to, if any. */
  parent: string | null;
  /** Seconds spent running in earlier stretches (before a cancel, failure or resume). */
  runSeconds?: number;
  /** When the current running stretch began (null when not running). */
  runningSince?: string | null;
  /** Machine of the process in `pid` (a pid is only checked on its own host). */
  host?: string;
  /** A child run: its key within the parent (grid point and seed, variant, stage). */
  child_key?: string;
  /** A child run: its position among the parent's children, in the order the parent made them. */
  child_index?: number;
  /** A child run submitted to Slurm: its array task, `<array job>_<index>`. */
  slurm_task?: string;
  /** A parent run: its Slurm submissions (job array of children + collect job), oldest first. */
  slurm?: SlurmSubmission[];
}

/** One submission of a parent's unfinished children to Slurm. */
export interface SlurmSubmission {
  array_job: string;
  collect_job: string;
  children: string[];
  submitted: string;
}

/** A child of a study or sweep as the runs table and the run page show it. */
export interface ChildState {
  id: string;
  key: string;
  name: string;
  status: RunStatus;
  /** Slurm's state of its array task (PENDING, RUNNING, ...) while Slurm still knows it. */
  slurm: string | null;
  /** Latest logged step and training loss (live curves come from `run.metrics`). */
  step: number | null;
  loss: number | null;
}

/** Run summaries as shown in a runs table. */
export interface RunSummary {
  id: string;
  method: string;
  name: string;
  status: string;
  backend: string | null;
  created: string;
  finished: string | null;
  tags: string[];
  parent: string | null;
  /** The one number that best summarizes the run (e.g. final validation loss) with its 95% interval and verdict where it has them, if any. */
  keyResult: KeyResult | null;
  /** How many warnings the run's summary carries. */
  warnings: number;
  error: ErrorInfo | null;
  /** The resolved config, flattened to dotted keys with scalar values (runs-table columns). */
  config: Record<string, string | number | boolean | null>;
  /** The summary's top-level numbers (runs-table columns). */
  metrics: Record<string, number>;
}

export type EngineEvent =
  | { kind: 'event'; event: 'progress'; runId: string; step: number; total: number; phase?: string; message?: string; etaSeconds?: number }
  | { kind: 'event'; event: 'metric'; runId: string; metric: Record<string, unknown> }
  | { kind: 'event'; event: 'log'; runId: string; message: string }
  | { kind: 'event'; event: 'run-state'; runId: string; status: string; error?: ErrorInfo }
  | { kind: 'event'; event: 'engine'; status: 'ready' | 'restarted'; message?: string };

export type Message = Request | Response | EngineEvent;

/**
 * Validate an incoming request. Returns the typed request or a protocol error naming the problem;
 * the id is echoed when it could be read so the client can match the error.
 */
export function parseRequest(raw: unknown): { ok: true; request: Request } | { ok: false; id: number; error: ErrorInfo } {
  const env = requestEnvelope.safeParse(raw);
  const id = typeof (raw as { id?: unknown })?.id === 'number' ? (raw as { id: number }).id : -1;
  if (!env.success) {
    const i = env.error.issues[0];
    return { ok: false, id, error: { code: 'protocol', message: `bad message: ${i.path.join('.') || 'message'}: ${i.message}` } };
  }
  const type = env.data.type;
  // Own properties only: `toString`, `constructor` or `__proto__` are not request types.
  if (!Object.hasOwn(requestSchemas, type)) return { ok: false, id, error: { code: 'protocol', message: `unknown request type "${type}"` } };
  const params = requestSchemas[type as RequestType].safeParse(env.data.params ?? {});
  if (!params.success) {
    const i = params.error.issues[0];
    return { ok: false, id, error: { code: 'protocol', message: `bad params for ${type}: ${i.path.join('.') || 'params'}: ${i.message}` } };
  }
  return { ok: true, request: { kind: 'request', id: env.data.id, type: type as RequestType, params: params.data } };
}
