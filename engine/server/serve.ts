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
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import type { EngineService } from '../service.js';

export const RENDERER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist-renderer');

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

export interface Served {
  url: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

export async function serve(service: EngineService, opts: { port?: number; token?: string; rendererDir?: string } = {}): Promise<Served> {
  const token = opts.token ?? randomBytes(16).toString('hex');
  const rendererDir = opts.rendererDir ?? RENDERER_DIR;
  let port = 0; // known once listening; the Host check compares against it

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const headers = { 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store' };
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
        const file = path.join(service.queue.project.run(art[1]).artifactsDir, art[2]);
        const body = fs.readFileSync(file);
        res.writeHead(200, { ...headers, 'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream' }).end(body);
      } catch {
        res.writeHead(404, headers).end('no such artifact');
      }
      return;
    }
    const rel = url.pathname === '/' ? 'index.html' : path.normalize(decodeURIComponent(url.pathname)).replace(/^[/\\]+/, '');
    const file = path.join(rendererDir, rel);
    if (!file.startsWith(rendererDir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
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
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (
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
    const off = service.onEvent((e) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(e)));
    ws.on('message', async (data) => {
      let raw: unknown;
      try {
        raw = JSON.parse(String(data));
      } catch {
        ws.send(JSON.stringify({ kind: 'response', id: -1, ok: false, error: { code: 'protocol', message: 'bad message: not JSON' } }));
        return;
      }
      const response = await service.handle(raw);
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(response));
    });
    ws.on('close', off);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 7860, '127.0.0.1', () => resolve());
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
        server.close(() => r());
      }),
  };
}
