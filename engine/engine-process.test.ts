/**
 * The utility process's port transport (Electron's MessagePort, driven here with Node's): each
 * message is answered over the port, a malformed one with a protocol error that leaves the engine
 * working, events reach the port, and a restarted engine greets with the restart notice.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { attachPort, startEngineProcess, type ParentPort, type PortLike } from './engine-process.js';
import { holdProject, releaseProject } from './server/project-lock.js';
import { JobQueue } from './jobs/queue.js';
import { EngineService } from './service.js';
import { Project } from './store/runs.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-port-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function nodePort(p: MessagePort): PortLike {
  return { post: (m) => p.postMessage(m), onMessage: (l) => p.on('message', l), onClose: (l) => p.on('close', l), start: () => p.start() };
}

function setup(greeting?: Parameters<typeof attachPort>[2]) {
  const service = new EngineService(new JobQueue(Project.open(path.join(tmp, 'p')), 'cpu'));
  const { port1, port2 } = new MessageChannel();
  const received: Record<string, unknown>[] = [];
  port2.on('message', (m) => received.push(m as Record<string, unknown>));
  attachPort(service, nodePort(port1), greeting);
  const next = (pred: (m: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const hit = received.find(pred);
      if (hit) return resolve(hit);
      const on = (m: Record<string, unknown>) => {
        if (!pred(m)) return;
        port2.off('message', on);
        resolve(m);
      };
      port2.on('message', on);
    });
  return { port2, next, close: () => (port1.close(), port2.close()) };
}

describe('engine over a MessagePort', () => {
  it('greets with ready, answers requests, and answers malformed messages with an error without stopping', async () => {
    const { port2, next, close } = setup();
    expect(await next((m) => m.event === 'engine')).toMatchObject({ status: 'ready' });
    port2.postMessage('just a string');
    expect(await next((m) => m.kind === 'response' && m.id === -1)).toMatchObject({ ok: false, error: { code: 'protocol' } });
    port2.postMessage({ kind: 'request', id: 3, type: 'run.cancel', params: { runId: 42 } });
    expect(await next((m) => m.id === 3)).toMatchObject({ ok: false, error: { code: 'protocol' } });
    port2.postMessage({ kind: 'request', id: 4, type: 'runs.list', params: {} });
    expect(await next((m) => m.id === 4)).toMatchObject({ ok: true, result: [] });
    close();
  });

  it('answers a request type named like an Object property with a protocol error and keeps serving', async () => {
    const { port2, next, close } = setup();
    for (const [i, type] of ['toString', 'constructor', '__proto__', 'hasOwnProperty'].entries()) {
      port2.postMessage({ kind: 'request', id: 40 + i, type, params: {} });
      expect(await next((m) => m.id === 40 + i)).toMatchObject({ ok: false, error: { code: 'protocol', message: `unknown request type "${type}"` } });
    }
    port2.postMessage({ kind: 'request', id: 50, type: 'hello' });
    expect(await next((m) => m.id === 50)).toMatchObject({ ok: true });
    close();
  });

  it('greets a restarted engine with the crash notice', async () => {
    const { next, close } = setup({ kind: 'event', event: 'engine', status: 'restarted', message: 'the engine stopped (exit code 9) and was restarted' });
    expect(await next((m) => m.event === 'engine')).toMatchObject({ status: 'restarted', message: expect.stringContaining('exit code 9') });
    close();
  });

  it('an app engine on a project another process serves tells main project-busy and does not serve it', () => {
    const dir = path.join(tmp, 'busy');
    const told: unknown[] = [];
    const listeners: unknown[] = [];
    const parent: ParentPort = { on: (_ev, l) => void listeners.push(l), postMessage: (m) => void told.push(m) };
    const lock = holdProject(Project.open(dir).dir); // as `normlab serve` holds it
    try {
      expect(startEngineProcess(parent, ['--project', dir])).toBe(false);
      expect(told).toEqual([
        {
          type: 'project-busy',
          message: expect.stringMatching(
            /^project .*busy is already open in process \d+ \(a `normlab serve` or the NormLab app\); use that one, or stop it first$/,
          ),
        },
      ]);
      expect(listeners).toHaveLength(0);
    } finally {
      releaseProject(lock);
    }
    expect(startEngineProcess(parent, ['--project', dir, '--backend', 'cpu'])).toBe(true);
    expect(listeners).toHaveLength(1);
    expect(fs.readFileSync(path.join(dir, 'serve.lock'), 'utf8')).toContain(`"pid":${process.pid}`);
  });
});
