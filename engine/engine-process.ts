/**
 * The engine as an Electron utility process (README "The workbench"). Main forks it with
 * `--project DIR [--backend B] [--allow DIR]...` (folders the user granted), sends
 * `{type: 'grant', dir}` for each folder granted later, and, for each renderer page, a
 * `{type: 'connect'}` message carrying one end of a MessageChannel; the renderer holds the other end. Every port speaks the
 * protocol of `engine/protocol/protocol.ts` (structured-cloned objects, validated by the service),
 * so tensors and metrics go from this process straight to the renderer, never through main.
 *
 * The engine holds the project's serve lock (engine/server/project-lock.ts) while it runs: when a
 * `normlab serve` or another app window already has the project open, it tells main
 * `{type: 'project-busy', message}` and exits, and main offers to open another project.
 *
 * If this process dies, main restarts it and the new engine's first message on the new port is an
 * `engine: restarted` event with main's notice; runs the dead process was executing read as
 * interrupted (their pid is gone, see engine/store/runs.ts) and can be resumed.
 *
 * `attachPort` is transport-only and is also what the tests drive with Node MessagePorts.
 */
import type { BackendChoice } from './backend/backend.js';
import { asNormLabError } from './core/errors.js';
import { JobQueue } from './jobs/queue.js';
import { holdProject } from './server/project-lock.js';
import type { EngineEvent } from './protocol/protocol.js';
import { EngineService } from './service.js';
import { Project } from './store/runs.js';

/** The least a port must do: Electron's MessagePortMain and Node's MessagePort both fit via adapters. */
export interface PortLike {
  post(message: unknown): void;
  onMessage(listener: (data: unknown) => void): void;
  onClose(listener: () => void): void;
  start(): void;
}

/**
 * Serve the protocol on one port: each message is answered by `service.handle` (which validates it
 * and never throws), and the engine's events are pushed until the port closes.
 */
export function attachPort(service: EngineService, port: PortLike, greeting?: EngineEvent): () => void {
  const send = (m: unknown) => {
    try {
      port.post(m);
    } catch {
      /* the other side went away; the close handler detaches */
    }
  };
  const off = service.onEvent(send);
  // `handle` answers every message; the catch is the last line of defence for this process.
  port.onMessage((raw) => {
    service
      .handle(raw)
      .then(send, (err: unknown) => send({ kind: 'response', id: -1, ok: false, error: { code: 'internal', message: asNormLabError(err).message } }));
  });
  port.onClose(off);
  port.start();
  send(greeting ?? { kind: 'event', event: 'engine', status: 'ready' });
  return off;
}

/** Electron's MessagePortMain as a PortLike. */
interface ElectronPort {
  postMessage(m: unknown): void;
  on(ev: 'message', l: (e: { data: unknown }) => void): void;
  on(ev: 'close', l: () => void): void;
  start(): void;
}

function electronPort(p: ElectronPort): PortLike {
  return {
    post: (m) => p.postMessage(m),
    onMessage: (l) => p.on('message', (e) => l(e.data)),
    onClose: (l) => p.on('close', l),
    start: () => p.start(),
  };
}

export interface ParentPort {
  on(ev: 'message', l: (e: { data: unknown; ports: ElectronPort[] }) => void): void;
  postMessage(message: unknown): void;
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Every value of a repeatable option (`--allow A --allow B`). */
function args(argv: string[], name: string): string[] {
  return argv.flatMap((a, i) => (a === name && argv[i + 1] !== undefined ? [argv[i + 1]] : []));
}

/**
 * Start serving the project named in `argv` to the ports main hands over. False (after telling
 * main `project-busy`) when another process has the project open; the caller then exits.
 */
export function startEngineProcess(parentPort: ParentPort, argv: string[]): boolean {
  const project = Project.open(arg(argv, '--project') ?? 'normlab-project');
  try {
    holdProject(project.dir); // never released: once this process is gone the lock is stale
  } catch (err) {
    parentPort.postMessage({ type: 'project-busy', message: asNormLabError(err).message });
    return false;
  }
  // Reading the run list once persists runs a dead engine left "running" as interrupted.
  project.listRuns();
  const backend = (arg(argv, '--backend') as BackendChoice | undefined) ?? 'auto';
  const service = new EngineService(new JobQueue(project, backend), { allow: args(argv, '--allow') });
  parentPort.on('message', (e) => {
    const msg = e.data as { type?: string; dir?: unknown; restarted?: { code: number; message: string } | null };
    // Main grants a folder the user picked in one of its open dialogs.
    if (msg?.type === 'grant' && typeof msg.dir === 'string') return service.grant(msg.dir);
    if (msg?.type !== 'connect' || !e.ports[0]) return;
    const greeting: EngineEvent = msg.restarted
      ? { kind: 'event', event: 'engine', status: 'restarted', message: msg.restarted.message }
      : { kind: 'event', event: 'engine', status: 'ready' };
    attachPort(service, electronPort(e.ports[0]), greeting);
  });
  return true;
}

const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;
if (parentPort && !startEngineProcess(parentPort, process.argv)) process.exit(0);
