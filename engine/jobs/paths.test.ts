import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { checkInputPath } from './paths.js';

it('reports an existing file and folder as usable and a missing path as an error naming it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paths-'));
  const file = path.join(dir, 'corpus.txt');
  fs.writeFileSync(file, 'text');
  expect(checkInputPath(file)).toEqual({ path: file, ok: true, kind: 'file' });
  expect(checkInputPath(dir)).toEqual({ path: dir, ok: true, kind: 'folder' });
  const missing = path.join(dir, 'nope.txt');
  expect(checkInputPath(missing)).toEqual({ path: missing, ok: false, error: `no such file or folder: ${missing}` });
  expect(checkInputPath('  ').ok).toBe(false);
  if (process.getuid?.() !== 0) {
    fs.chmodSync(file, 0);
    expect(checkInputPath(file)).toMatchObject({ ok: false, kind: 'file' });
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
