/** Helpers shared by the unit tests: temp folders and the NormLabError a call must raise. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { NormLabError } from '../core/errors.js';

/** A fresh empty folder under the OS temp dir. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `normlab-${prefix}-`));
}

/** The NormLabError a synchronous call throws (fails the test if it throws nothing or another type). */
export function errorOfSync(fn: () => unknown): NormLabError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NormLabError);
    return err as NormLabError;
  }
  throw new Error('expected an error');
}

/** The NormLabError a promise rejects with, or a synchronous call throws. */
export async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<NormLabError> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (err) {
    expect(err).toBeInstanceOf(NormLabError);
    return err as NormLabError;
  }
  throw new Error('expected an error');
}

/** The call fails with a one-line `config` error matching `pattern`. */
export function expectConfigError(fn: () => unknown, pattern: RegExp): void {
  const err = errorOfSync(fn);
  expect(err.code).toBe('config');
  expect(err.message).toMatch(pattern);
  expect(err.message).not.toContain('\n');
}
