/**
 * The one module that owns the engine connection. Components call `engine.request(type, params)`
 * and subscribe with `engine.on(listener)`; they never see the transport, which is either
 *  - a MessagePort handed over by Electron's preload (`normlab:engine-port` window message), or
 *  - a WebSocket to `normlab serve` (browser mode) at `/ws?token=` with the launch token from the
 *    page URL.
 * Requests and events are the typed protocol of engine/protocol/protocol.ts.
 */
import type { ChildState, EngineEvent, ErrorInfo, RequestParams, RequestType, Response, RunRecord, RunSummary } from '../../../engine/protocol/protocol';

export type { RunRecord };

export type { EngineEvent, RunSummary };

export class EngineError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Hello {
  version: string;
  protocol: number;
  /** The backend the engine runs on (null before the first run); detail and GPU adapter as the engine reports them. */
  backend: string | { name: string; detail?: string; adapter?: { vendor: string; architecture: string; description: string; software: boolean } } | null;
  project: string;
}

export interface JobKindInfo {
  name: string;
  title: string;
  description: string;
  resumable: boolean;
  jsonSchema: JsonSchema;
  defaults: Record<string, unknown>;
  /** Recipe presets (a paper's values); `config` is partial, nested like the YAML. */
  presets?: { name: string; description: string; source: string; config: Record<string, unknown> }[];
}

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  additionalProperties?: boolean | JsonSchema;
}

export interface RunDetail {
  summary: RunSummary;
  record: RunRecord;
  result: Record<string, unknown> | null;
  artifacts: string[];
  /** The artifacts that are folders (a model export, a quantized model). */
  folders: string[];
  /** A study's or sweep's children, wherever they run (Slurm's state where it knows them). */
  children: ChildState[];
}

/** What each request answers (the engine's service.ts handlers). */
export interface Results {
  hello: Hello;
  'runs.list': RunSummary[];
  'run.get': RunDetail;
  'run.metrics': Record<string, unknown>[];
  'run.start': { runId: string };
  'run.cancel': { runId: string };
  'run.resume': { runId: string };
  'run.artifact': { name: string; base64: string };
  'run.tags': RunSummary;
  'run.folder': { name: string; entries: { name: string; folder: boolean; bytes: number | null }[] };
  'paths.check': { path: string; ok: boolean; kind?: 'file' | 'folder'; error?: string }[];
  'jobs.kinds': JobKindInfo[];
  'config.validate': { ok: true; config: Record<string, unknown> } | { ok: false; error: ErrorInfo };
  'examples.list': { file: string; config: Record<string, unknown> }[];
}

interface Transport {
  send(msg: unknown): void;
  close(): void;
}

type ConnState = 'connecting' | 'ready' | 'lost';

class EngineConnection {
  /** connecting → ready; lost while a WebSocket is down (browser mode retries). */
  state = $state<ConnState>('connecting');
  /** A notice to show (engine restarted after a crash, connection lost). */
  notice = $state<{ kind: 'error' | 'info'; text: string } | null>(null);
  hello = $state<Hello | null>(null);
  /** Bumps on every (re)connection, so views reload what they show. */
  generation = $state(0);
  readonly mode: 'electron' | 'browser';

  private transport: Transport | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<(e: EngineEvent) => void>();
  private readonly token: string | null;
  private retry = 0;
  private readonly artifactCache = new Map<string, string>();

  constructor() {
    this.mode = location.protocol === 'normlab:' ? 'electron' : 'browser';
    const params = new URLSearchParams(location.search);
    this.token = params.get('token');
    if (this.mode === 'electron') this.listenForPorts();
    else this.connectSocket();
  }

  // ---- transports -------------------------------------------------------------------------

  /** Electron: the preload forwards each port main hands over (first load, engine restart). */
  private listenForPorts(): void {
    window.addEventListener('message', (e: MessageEvent) => {
      const data = e.data as { type?: string; info?: { restarted?: { message: string } } } | null;
      if (e.source !== window || data?.type !== 'normlab:engine-port' || !e.ports[0]) return;
      const port = e.ports[0];
      this.transport?.close();
      port.onmessage = (ev) => this.receive(ev.data);
      port.start();
      this.transport = { send: (m) => port.postMessage(m), close: () => port.close() };
      if (data.info?.restarted) this.notice = { kind: 'error', text: data.info.restarted.message };
      void this.onConnected();
    });
  }

  /** Browser mode: one WebSocket to the serving engine, re-opened with backoff when it drops. */
  private connectSocket(): void {
    if (!this.token) {
      this.state = 'lost';
      this.notice = { kind: 'error', text: 'No launch token in the page address: open the URL that `normlab serve` printed (it ends in ?token=…).' };
      return;
    }
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?token=${encodeURIComponent(this.token)}`);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.retry = 0;
      this.transport = { send: (m) => ws.send(JSON.stringify(m)), close: () => ws.close() };
      void this.onConnected();
    };
    ws.onmessage = (ev) => {
      try {
        this.receive(JSON.parse(String(ev.data)));
      } catch {
        /* not ours */
      }
    };
    ws.onclose = () => {
      if (this.transport && opened) this.transport = null;
      this.failPending('the engine connection closed');
      this.state = 'lost';
      if (opened || this.retry > 0)
        this.notice = { kind: 'error', text: 'Lost the connection to the engine. Runs it was executing are interrupted; reconnecting…' };
      this.retry += 1;
      setTimeout(() => this.connectSocket(), Math.min(5000, 500 * this.retry));
    };
  }

  private async onConnected(): Promise<void> {
    try {
      this.hello = await this.request('hello', {});
      if (this.state === 'lost' && this.notice?.text.startsWith('Lost the connection')) this.notice = { kind: 'info', text: 'Reconnected to the engine.' };
      this.state = 'ready';
      this.generation += 1;
      this.artifactCache.clear();
    } catch (err) {
      this.state = 'lost';
      this.notice = { kind: 'error', text: `The engine did not answer: ${(err as Error).message}` };
    }
  }

  private failPending(message: string): void {
    for (const p of this.pending.values()) p.reject(new EngineError('io', message));
    this.pending.clear();
  }

  private receive(msg: unknown): void {
    const m = msg as Response | EngineEvent;
    if (m?.kind === 'response') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new EngineError(m.error.code, m.error.message));
    } else if (m?.kind === 'event') {
      if (m.event === 'engine' && m.status === 'restarted') this.notice = { kind: 'error', text: m.message ?? 'The engine was restarted.' };
      for (const l of this.listeners) l(m);
    }
  }

  // ---- the API components use -----------------------------------------------------------------

  request<T extends RequestType>(type: T, params: RequestParams<T>): Promise<Results[T]> {
    const t = this.transport;
    if (!t) return Promise.reject(new EngineError('io', 'not connected to the engine'));
    const id = this.nextId++;
    return new Promise<Results[T]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      t.send({ kind: 'request', id, type, params });
    });
  }

  /** Subscribe to engine events (progress, metric, log, run-state, engine); returns unsubscribe. */
  on(listener: (e: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * A URL an <img> or a download link can use for a run's artifact: browser mode serves them at
   * `/artifacts/<run>/<file>?token=`; in Electron the bytes come over the port as a blob URL.
   */
  async artifactUrl(runId: string, name: string): Promise<string> {
    if (this.mode === 'browser') return `/artifacts/${encodeURIComponent(runId)}/${encodeURIComponent(name)}?token=${encodeURIComponent(this.token ?? '')}`;
    const key = `${runId}/${name}`;
    const hit = this.artifactCache.get(key);
    if (hit) return hit;
    const { base64 } = await this.request('run.artifact', { runId, name });
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: name.endsWith('.png') ? 'image/png' : 'application/octet-stream' }));
    this.artifactCache.set(key, url);
    return url;
  }

  /** An artifact's text (CSV and JSON tables). */
  async artifactText(runId: string, name: string): Promise<string> {
    const { base64 } = await this.request('run.artifact', { runId, name });
    return new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
  }

  dismissNotice(): void {
    this.notice = null;
  }
}

export const engine = new EngineConnection();
