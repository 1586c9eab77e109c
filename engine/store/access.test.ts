/**
 * Paths are checked as the kernel resolves them: a symlink inside the project followed by `..`
 * climbs from where the link points, so it cannot reach a file outside the project; model and data
 * inputs must be regular files of a bounded size, refused before anything is read.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readInputFileSync } from '../io/atomic.js';
import { checkInputPath } from '../jobs/paths.js';
import { assertAllowedPath, realLocation } from './access.js';

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-access-')));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('paths as the kernel resolves them', () => {
  // tmp/project/link -> tmp/outside/deep; tmp/outside/secret.txt is outside the project.
  const project = path.join(tmp, 'project');
  fs.mkdirSync(path.join(tmp, 'outside', 'deep'), { recursive: true });
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(tmp, 'outside', 'secret.txt'), 'outside');
  fs.writeFileSync(path.join(project, 'secret.txt'), 'inside');
  fs.symlinkSync(path.join(tmp, 'outside', 'deep'), path.join(project, 'link'));

  it('a link inside the project followed by .. resolves where the kernel reads it, and is refused', () => {
    const sneaky = path.join(project, 'link') + '/../secret.txt';
    expect(fs.readFileSync(sneaky, 'utf8')).toBe('outside'); // what a job would read
    expect(realLocation(sneaky)).toBe(path.join(tmp, 'outside', 'secret.txt'));
    expect(() => assertAllowedPath(sneaky, [project], 'data.path')).toThrow(/outside the project/);
  });

  it('keeps plain paths, paths inside, and not-yet-existing tails as they are', () => {
    expect(assertAllowedPath(path.join(project, 'secret.txt'), [project], 'x')).toBe(path.join(project, 'secret.txt'));
    expect(realLocation(path.join(project, 'new', 'a', '..', 'b'))).toBe(path.join(project, 'new', 'b'));
    expect(realLocation(path.join(project, 'link', 'x.bin'))).toBe(path.join(tmp, 'outside', 'deep', 'x.bin'));
    expect(() => assertAllowedPath(path.join(project, '..', 'outside', 'secret.txt'), [project], 'x')).toThrow(/outside the project/);
  });
});

describe('input files', () => {
  it('a device is no input: refused by the form check and by the reader, before reading', () => {
    expect(checkInputPath('/dev/zero')).toMatchObject({ ok: false, error: expect.stringContaining('not a regular file') });
    expect(() => readInputFileSync('/dev/zero', 'token file', 1024)).toThrow(/token file \/dev\/zero is a character device, expected a regular file/);
  });

  it('a file over its bound is refused with its size', () => {
    const big = path.join(tmp, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(3 * 2 ** 20));
    expect(() => readInputFileSync(big, 'config file', 2 ** 20)).toThrow(/config file .*big.bin is 3.0 MiB, more than the 1.0 MiB it may be/);
    expect(readInputFileSync(big, 'config file', 4 * 2 ** 20).length).toBe(3 * 2 ** 20);
  });
});
