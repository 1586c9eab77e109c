/** Shared e2e plumbing: the state the global setup leaves, serve processes, screenshots. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from '@playwright/test';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const TMP = path.join(ROOT, '.normlab-tmp');
export const STATE_FILE = path.join(TMP, 'e2e-state.json');
export const SCREENSHOTS = path.join(ROOT, 'e2e', 'screenshots');

export interface FixtureRun {
  fixture: string;
  method: string;
  runId: string | null;
  status: string;
  /** Why the fixture has no finished run (kind not registered yet, or the error). */
  error: string | null;
  seconds: number;
}

export interface E2EState {
  project: string;
  url: string;
  port: number;
  token: string;
  pid: number;
  fixtures: FixtureRun[];
}

export function state(): E2EState {
  return JSON.parse(fs.readFileSync(STATE_FILE, 'utf8')) as E2EState;
}

export function fixture(method: string): FixtureRun | undefined {
  return state().fixtures.find((f) => f.method === method);
}

/** Start `normlab serve --port 0` on a project; resolves with its URL once it listens. */
export function startServe(project: string, extra: string[] = []): Promise<{ proc: ChildProcess; url: string; port: number }> {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'normlab.js'), 'serve', '--port', '0', '--project', project, '--json', ...extra], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`normlab serve did not start in 60 s: ${err.slice(-400)}`)), 60_000);
    proc.stdout!.on('data', (d) => {
      out += String(d);
      const line = out.split('\n').find((l) => l.trim().startsWith('{'));
      if (line) {
        clearTimeout(timer);
        const { url, port } = JSON.parse(line) as { url: string; port: number };
        resolve({ proc, url, port });
      }
    });
    proc.stderr!.on('data', (d) => (err += String(d)));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`normlab serve exited with ${code}: ${err.replace(/^var Module.*$/gm, '').slice(-400)}`));
    });
  });
}

/** Save a screenshot of the page to e2e/screenshots/<name>.png. */
export async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage });
}

/** `#/…` route on the served URL (keeps the token in the query). */
export function at(url: string, route: string): string {
  return `${url.split('#')[0]}#${route}`;
}
