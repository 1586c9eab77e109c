/**
 * Browser mode: the built renderer and the engine protocol over HTTP + WebSocket, bound to
 * 127.0.0.1 only. A per-launch token (in the URL the CLI prints) is required for the WebSocket
 * and the artifact route; a connection without it, or from a non-loopback address, is refused.
 * Requests must name this server in their Host header (127.0.0.1 or localhost with our port), so a
 * DNS-rebinding page cannot reach it, and a WebSocket whose Origin is another site is refused.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { appPath } from '../core/app-paths.js';
import { asNormLabError, NormLabError } from '../core/errors.js';
import { holdProject, releaseProject } from './project-lock.js';
import type { EngineService } from '../service.js';

export const RENDERER_DIR = appPath('dist-renderer');

/** The renderer's Content-Security-Policy: own scripts only, no eval, no remote anything. */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ws://127.0.0.1:*; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.csv': 'text/csv; charset=utf-8',
  '.woff2': 'font/woff2',
};

/**
 * Back-pressure per WebSocket: a client that sends requests without reading the answers (or
 * cannot keep up with the events) is disconnected once this many of its requests are unanswered
 * or this many bytes wait to be sent to it, so it cannot make the server unresponsive or grow it
 * without bound. The workbench has a few requests in flight at a time.
 */
export const MAX_PENDING_REQUESTS = 256;
export const MAX_BUFFERED_BYTES = 64 * 2 ** 20;

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/** Host header names this server (defeats DNS rebinding: evil.example resolving to 127.0.0.1). */
export function hostAllowed(host: string | undefined, port: number): boolean {
  if (!host) return false;
  return host === `127.0.0.1:${port}` || host === `localhost:${port}` || host === `[::1]:${port}`;
}

/** A browser's Origin, when sent, must be this server itself. */
export function originAllowed(origin: string | undefined, port: number): boolean {
  if (origin === undefined) return true; // non-browser clients (tests, scripts) send none
  return origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}` || origin === `http://[::1]:${port}`;
}

function tokenMatches(given: string | null, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A request's path and query as a URL, or null when it is not a path (`//%/x` would parse as a host). */
function requestUrl(raw: string | undefined): URL | null {
  if (!raw?.startsWith('/')) return null;
  try {
    return new URL(`http://127.0.0.1${raw}`);
  } catch {
    return null;
  }
}

export interface Served {
  url: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

export async function serve(service: EngineService, opts: { port?: number; token?: string; rendererDir?: string } = {}): Promise<Served> {
  const lock = holdProject(service.queue.project.dir);
  try {
    return await listen(service, opts, lock);
  } catch (err) {
    releaseProject(lock);
    throw err;
  }
}

async function listen(service: EngineService, opts: { port?: number; token?: string; rendererDir?: string }, lock: string): Promise<Served> {
  const token = opts.token ?? randomBytes(16).toString('hex');
  const rendererDir = opts.rendererDir ?? RENDERER_DIR;
  let port = 0; // known once listening; the Host check compares against it

  const headers = { 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store' };
  // The one request-level catch: whatever a request does wrong, it gets an answer and the server lives.
  const server = http.createServer((req, res) => {
    try {
      answer(req, res);
    } catch {
      if (!res.headersSent) res.writeHead(500, headers);
      res.end('internal error');
    }
  });

  const answer = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = requestUrl(req.url);
    if (!url) {
      res.writeHead(400, headers).end('bad request: not a path');
      return;
    }
    if (!isLoopback(req.socket.remoteAddress) || !hostAllowed(req.headers.host, port)) {
      res.writeHead(403, headers).end('loopback only');
      return;
    }
    // Artifacts (plots, tables) by URL so <img> can show them: /artifacts/<run>/<file>?token=
    const art = /^\/artifacts\/([\w.-]+)\/([\w.-]+)$/.exec(url.pathname);
    if (art) {
      if (!tokenMatches(url.searchParams.get('token'), token)) {
        res.writeHead(401, headers).end('missing or wrong token');
        return;
      }
      try {
        const body = service.queue.project.run(art[1]).readArtifact(art[2]);
        res.writeHead(200, { ...headers, 'Content-Type': MIME[path.extname(art[2])] ?? 'application/octet-stream' }).end(body);
      } catch {
        res.writeHead(404, headers).end('no such artifact');
      }
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400, headers).end('bad request: malformed percent-encoding in the path');
      return;
    }
    const rel = pathname === '/' ? 'index.html' : path.normalize(pathname).replace(/^[/\\]+/, '');
    const file = path.join(rendererDir, rel);
    if (!file.startsWith(rendererDir + path.sep) || pathname.includes('\0') || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      if (!fs.existsSync(path.join(rendererDir, 'index.html'))) {
        res
          .writeHead(503, { ...headers, 'Content-Type': 'text/plain' })
          .end("the renderer is not built and could not be built here (see the serve command's output): run `npm run build:renderer`");
        return;
      }
      res.writeHead(404, headers).end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream' }).end(fs.readFileSync(file));
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  // A request the HTTP parser rejects gets a 400 (a reset connection just closes); the server goes on.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) socket.destroy();
    else socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const url = requestUrl(req.url);
    if (
      !url ||
      !isLoopback(req.socket.remoteAddress) ||
      !hostAllowed(req.headers.host, port) ||
      !originAllowed(req.headers.origin, port) ||
      url.pathname !== '/ws' ||
      !tokenMatches(url.searchParams.get('token'), token)
    ) {
      socket.write('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => attach(ws));
  });

  const attach = (ws: WebSocket) => {
    const send = (m: unknown) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
    };
    const off = service.onEvent((e) => {
      send(e);
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) ws.close(1008, 'too much unread data: read the answers and events');
    });
    let pending = 0;
    // A frame over maxPayload or of invalid UTF-8 makes ws emit 'error' and close the socket with
    // 1009/1007; without a listener that error would end the process.
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => {
      if (++pending > MAX_PENDING_REQUESTS || ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        if (ws.readyState === ws.OPEN) ws.close(1008, `more than ${MAX_PENDING_REQUESTS} unanswered requests or unread answers: read the answers`);
        return;
      }
      // The one message-level catch: a message that throws anywhere gets an `internal` error.
      void (async () => {
        let raw: unknown;
        try {
          raw = JSON.parse(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data));
        } catch {
          send({ kind: 'response', id: -1, ok: false, error: { code: 'protocol', message: 'bad message: not JSON' } });
          return;
        }
        send(await service.handle(raw));
      })()
        .catch((err: unknown) => send({ kind: 'response', id: -1, ok: false, error: { code: 'internal', message: asNormLabError(err).message } }))
        .finally(() => pending--);
    });
    ws.on('close', off);
  };

  const wanted = opts.port ?? 7860;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE')
        reject(
          new NormLabError('io', `port ${wanted} on 127.0.0.1 is in use (another normlab serve?): choose another with --port N, or --port 0 for any free one`),
        );
      else if (err.code === 'EACCES') reject(new NormLabError('io', `port ${wanted} needs privileges: choose one above 1023 with --port N`));
      else reject(asNormLabError(err));
    });
    server.listen(wanted, '127.0.0.1', () => resolve());
  });
  port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    port,
    token,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => {
          releaseProject(lock);
          r();
        });
      }),
  };
}
