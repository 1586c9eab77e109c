/**
 * Browser mode works without a separate build step: `ensureRenderer` (run by `npm install`'s
 * postinstall, `normlab serve` and `npm start`) builds a missing renderer, leaves an up-to-date
 * one alone, and the server then serves the built page.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ensureRenderer, rendererStale, ROOT } from '../../bin/build-renderer.mjs';
import { JobQueue } from '../jobs/queue.js';
import { EngineService } from '../service.js';
import { Project } from '../store/runs.js';
import { serve } from './serve.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-renderer-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('builds a missing renderer once, then finds it up to date, and serve serves the built page', async () => {
  const outDir = path.join(tmp, 'dist-renderer');
  expect(rendererStale(ROOT, outDir)).toBe('not built yet');
  const first = ensureRenderer({ outDir, log: () => undefined });
  expect(first.error).toBeUndefined();
  expect(first.built).toBe(true);
  expect(fs.existsSync(path.join(outDir, 'index.html'))).toBe(true);
  expect(rendererStale(ROOT, outDir)).toBeNull();
  expect(ensureRenderer({ outDir, log: () => undefined }).built).toBe(false);

  const served = await serve(new EngineService(new JobQueue(Project.open(path.join(tmp, 'project')), 'cpu')), { port: 0, rendererDir: outDir });
  try {
    const res = await fetch(`http://127.0.0.1:${served.port}/`);
    expect(res.status).toBe(200);
    const html = await res.text();
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeTruthy();
    expect((await fetch(`http://127.0.0.1:${served.port}/${script}`)).status).toBe(200);
  } finally {
    await served.close();
  }
}, 180_000);

it('a renderer whose sources are newer than its build is stale', () => {
  const outDir = path.join(tmp, 'old');
  fs.mkdirSync(outDir);
  fs.writeFileSync(path.join(outDir, 'index.html'), '<!doctype html>');
  const past = new Date(Date.now() - 10 * 365 * 86400_000);
  fs.utimesSync(path.join(outDir, 'index.html'), past, past);
  expect(rendererStale(ROOT, outDir)).toBe('its sources changed since the last build');
});
