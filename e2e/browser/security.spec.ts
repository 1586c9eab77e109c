/**
 * Browser-mode security seen from a page: the strict CSP on the served renderer (no inline
 * script in the built index.html), a WebSocket without the launch token refused, and a malformed
 * protocol message answered with an error while the engine keeps working.
 */
import { expect, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, state } from '../helpers';

test('the renderer is served with the strict CSP and the build has no inline scripts', async ({ request }) => {
  const s = state();
  const r = await request.get(s.url);
  const csp = r.headers()['content-security-policy'];
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("object-src 'none'");
  expect(csp).not.toMatch(/unsafe-eval|script-src[^;]*unsafe-inline/);
  const html = fs.readFileSync(path.join(ROOT, 'dist-renderer', 'index.html'), 'utf8');
  for (const tag of html.match(/<script\b[^>]*>[\s\S]*?<\/script>/g) ?? []) expect(tag).toMatch(/^<script\b[^>]*\bsrc=/);
  expect(html).not.toMatch(/\son\w+=/); // no inline event handlers
});

test('a WebSocket without the token, or with a wrong one, is refused; a malformed message gets an error and the engine keeps working', async ({ page }) => {
  const s = state();
  await page.goto(s.url);
  const result = await page.evaluate(async (token) => {
    const tryOpen = (q: string) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/ws${q}`);
        ws.onopen = () => (ws.close(), resolve('open'));
        ws.onerror = () => resolve('refused');
      });
    const noToken = await tryOpen('');
    const wrong = await tryOpen('?token=0123456789abcdef0123456789abcdef');
    const ws = new WebSocket(`ws://${location.host}/ws?token=${token}`);
    await new Promise((r) => (ws.onopen = r));
    const responses: { id: number; ok: boolean; error?: { code: string } }[] = [];
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.kind === 'response') responses.push(m);
    };
    ws.send('this is not json');
    ws.send(JSON.stringify({ kind: 'request', id: 5, type: 'run.start', params: { config: 'no' } }));
    ws.send(JSON.stringify({ kind: 'request', id: 6, type: 'hello', params: {} }));
    await new Promise((r) => setTimeout(r, 1500));
    ws.close();
    return { noToken, wrong, responses };
  }, s.token);
  expect(result.noToken).toBe('refused');
  expect(result.wrong).toBe('refused');
  expect(result.responses.find((r) => r.id === -1)).toMatchObject({ ok: false, error: { code: 'protocol' } });
  expect(result.responses.find((r) => r.id === 5)).toMatchObject({ ok: false, error: { code: 'protocol' } });
  expect(result.responses.find((r) => r.id === 6)).toMatchObject({ ok: true });
});

test('a page cannot open folders, name files outside the project, or crash the server with a bad URL', async ({ page }) => {
  const s = state();
  await page.goto(s.url);
  const result = await page.evaluate(async (token) => {
    const badUrl = (await fetch('/%')).status;
    const ws = new WebSocket(`ws://${location.host}/ws?token=${token}`);
    await new Promise((r) => (ws.onopen = r));
    const responses = new Map<
      number,
      { ok: boolean; result?: { ok: boolean; error?: { code: string; message: string } }; error?: { code: string; message: string } }
    >();
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.kind === 'response') responses.set(m.id, m);
    };
    ws.send(JSON.stringify({ kind: 'request', id: 1, type: 'project.open', params: { dir: '/tmp/x/a/b/c' } }));
    ws.send(JSON.stringify({ kind: 'request', id: 2, type: 'toString', params: {} }));
    const config = { method: 'lm-pretrain', data: { source: 'tokens', path: '/etc/passwd' } };
    ws.send(JSON.stringify({ kind: 'request', id: 3, type: 'config.validate', params: { config } }));
    ws.send(JSON.stringify({ kind: 'request', id: 4, type: 'run.start', params: { config } }));
    ws.send(JSON.stringify({ kind: 'request', id: 5, type: 'hello', params: {} }));
    await new Promise((r) => setTimeout(r, 1500));
    ws.close();
    return { badUrl, responses: Object.fromEntries(responses) };
  }, s.token);
  expect(result.badUrl).toBe(400);
  expect(result.responses[1]).toMatchObject({ ok: false, error: { code: 'protocol', message: 'unknown request type "project.open"' } });
  expect(result.responses[2]).toMatchObject({ ok: false, error: { code: 'protocol' } });
  expect(result.responses[3]).toMatchObject({ ok: true, result: { ok: false, error: { code: 'access' } } });
  expect(result.responses[4]).toMatchObject({
    ok: false,
    error: { code: 'access', message: expect.stringContaining('config data.path: /etc/passwd is outside the project') },
  });
  expect(result.responses[5]).toMatchObject({ ok: true });
  expect(fs.existsSync('/tmp/x/a/b/c')).toBe(false);
});
