/**
 * Browser mode's security properties: the WebSocket needs the per-launch token (missing or wrong
 * → refused), a foreign Origin or Host is refused, a malformed protocol message gets an error and
 * the engine keeps answering, artifacts need the token, paths cannot climb out of the renderer
 * folder, and every response carries the strict CSP.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { JobQueue } from '../jobs/queue.js';
import { EngineService } from '../service.js';
import { Project } from '../store/runs.js';
import { CSP, hostAllowed, isLoopback, originAllowed, serve, type Served } from './serve.js';

let served: Served;
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-serve-'));
  const rendererDir = path.join(tmp, 'renderer');
  fs.mkdirSync(rendererDir);
  fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>t</title>');
  fs.writeFileSync(path.join(tmp, 'secret.txt'), 'outside');
  const service = new EngineService(new JobQueue(Project.open(path.join(tmp, 'project')), 'cpu'));
  served = await serve(service, { port: 0, rendererDir });
});

afterAll(async () => {
  await served.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Open a WebSocket; resolves 'open' or the refusal's HTTP status. */
function connect(query: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket | null; status: number | 'open' | 'error' }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${served.port}/ws${query}`, { headers });
    ws.once('open', () => resolve({ ws, status: 'open' }));
    ws.once('unexpected-response', (_req, res) => resolve({ ws: null, status: res.statusCode ?? 0 }));
    ws.once('error', () => resolve({ ws: null, status: 'error' }));
  });
}

/** Send raw text, resolve the next message that is a response. */
function exchange(ws: WebSocket, text: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const on = (data: unknown) => {
      const msg = JSON.parse(String(data)) as Record<string, unknown>;
      if (msg.kind !== 'response') return;
      ws.off('message', on);
      resolve(msg);
    };
    ws.on('message', on);
    ws.send(text);
  });
}

function get(pathname: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: served.port, path: pathname, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('browser-mode WebSocket', () => {
  it('refuses a connection without the launch token', async () => {
    expect((await connect('')).status).toBe(401);
  });

  it('refuses a connection with a wrong token, including one of the right length', async () => {
    expect((await connect('?token=nope')).status).toBe(401);
    expect((await connect(`?token=${'0'.repeat(served.token.length)}`)).status).toBe(401);
  });

  it('refuses a connection from a page of another origin, even with the token', async () => {
    expect((await connect(`?token=${served.token}`, { Origin: 'http://evil.example' })).status).toBe(401);
  });

  it('refuses a request whose Host is not this server (DNS rebinding)', async () => {
    expect((await connect(`?token=${served.token}`, { Host: `evil.example:${served.port}` })).status).toBe(401);
    expect((await get('/', { Host: 'evil.example' })).status).toBe(403);
  });

  it('answers a malformed message with a protocol error and keeps working', async () => {
    const { ws, status } = await connect(`?token=${served.token}`, { Origin: `http://127.0.0.1:${served.port}` });
    expect(status).toBe('open');
    const notJson = await exchange(ws!, '{not json');
    expect(notJson).toMatchObject({ ok: false, error: { code: 'protocol' } });
    const badShape = await exchange(ws!, JSON.stringify({ kind: 'request', id: 7, type: 'run.get', params: { runId: '../../etc' } }));
    expect(badShape).toMatchObject({ id: 7, ok: false, error: { code: 'protocol' } });
    const unknown = await exchange(ws!, JSON.stringify({ kind: 'request', id: 8, type: 'rm -rf', params: {} }));
    expect(unknown).toMatchObject({ id: 8, ok: false, error: { code: 'protocol', message: 'unknown request type "rm -rf"' } });
    const extra = await exchange(ws!, JSON.stringify({ kind: 'request', id: 9, type: 'hello', params: {}, evil: true }));
    expect(extra).toMatchObject({ ok: false, error: { code: 'protocol' } });
    const hello = await exchange(ws!, JSON.stringify({ kind: 'request', id: 10, type: 'hello', params: {} }));
    expect(hello).toMatchObject({ id: 10, ok: true, result: { protocol: 1 } });
    ws!.close();
  });
});

describe('browser mode survives what used to end the process', () => {
  it('answers a request type named like an Object property with a protocol error', async () => {
    const { ws } = await connect(`?token=${served.token}`);
    for (const [i, type] of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'].entries()) {
      const r = await exchange(ws!, JSON.stringify({ kind: 'request', id: 20 + i, type, params: {} }));
      expect(r).toMatchObject({ id: 20 + i, ok: false, error: { code: 'protocol', message: `unknown request type "${type}"` } });
    }
    expect(await exchange(ws!, JSON.stringify({ kind: 'request', id: 30, type: 'hello' }))).toMatchObject({ id: 30, ok: true });
    ws!.close();
  });

  it('closes a socket that sends a frame over 4 MiB or invalid UTF-8, and serves the next one', async () => {
    for (const frame of [Buffer.alloc(4 * 1024 * 1024 + 1, 0x20).toString(), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]) {
      const { ws } = await connect(`?token=${served.token}`);
      const code = await new Promise<number>((resolve) => {
        ws!.once('close', (c) => resolve(c));
        ws!.send(frame, { binary: false });
      });
      expect([1006, 1007, 1009]).toContain(code);
    }
    const { ws } = await connect(`?token=${served.token}`);
    expect(await exchange(ws!, JSON.stringify({ kind: 'request', id: 31, type: 'hello' }))).toMatchObject({ ok: true });
    ws!.close();
  });

  it('answers a malformed percent-encoding with 400, with or without the token', async () => {
    for (const p of ['/%', '/%E0%A4%A', `/%?token=${served.token}`, '/artifacts/%/x']) expect((await get(p)).status).toBe(400);
    expect((await get('/')).status).toBe(200);
  });

  it('does not serve an artifact that is a symlink to a file outside the run', async () => {
    const project = Project.open(path.join(tmp, 'project'));
    const run = project.createRun('lm-pretrain', {}, { seed: 0 });
    run.markFinished('completed');
    fs.writeFileSync(path.join(run.artifactsDir, 'plot.png'), 'png');
    fs.symlinkSync(path.join(tmp, 'secret.txt'), path.join(run.artifactsDir, 'leak.png'));
    expect((await get(`/artifacts/${run.id}/plot.png?token=${served.token}`)).body).toBe('png');
    const r = await get(`/artifacts/${run.id}/leak.png?token=${served.token}`);
    expect(r.status).toBe(404);
    expect(r.body).not.toContain('outside');
  });
});

describe('browser-mode HTTP', () => {
  it('serves the renderer with the strict CSP and no-sniff headers', async () => {
    const r = await get('/');
    expect(r.status).toBe(200);
    expect(r.headers['content-security-policy']).toBe(CSP);
    expect(CSP).toContain("script-src 'self'");
    expect(CSP).not.toContain('unsafe-eval');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
  });

  it('does not serve files outside the renderer folder', async () => {
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt']) {
      const r = await get(p);
      expect(r.body).not.toContain('outside');
    }
  });

  it('refuses artifacts without the token', async () => {
    expect((await get('/artifacts/some-run/plot.png')).status).toBe(401);
    expect((await get('/artifacts/some-run/plot.png?token=wrong')).status).toBe(401);
    expect((await get(`/artifacts/some-run/plot.png?token=${served.token}`)).status).toBe(404);
  });

  it('listens on the loopback interface only', () => {
    expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{32}$/);
  });
});

describe('address checks', () => {
  it('accepts loopback addresses and refuses others', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a)).toBe(true);
    for (const a of ['10.0.0.2', '192.168.1.5', '::ffff:10.0.0.1', '0.0.0.0', undefined]) expect(isLoopback(a)).toBe(false);
  });

  it('accepts only this server as Host and Origin', () => {
    expect(hostAllowed('127.0.0.1:8000', 8000)).toBe(true);
    expect(hostAllowed('localhost:8000', 8000)).toBe(true);
    expect(hostAllowed('127.0.0.1:8001', 8000)).toBe(false);
    expect(hostAllowed('rebind.example:8000', 8000)).toBe(false);
    expect(originAllowed(undefined, 8000)).toBe(true);
    expect(originAllowed('http://127.0.0.1:8000', 8000)).toBe(true);
    expect(originAllowed('null', 8000)).toBe(false);
    expect(originAllowed('http://127.0.0.1:9999', 8000)).toBe(false);
  });
});
