/**
 * One serving process per project: a `normlab serve` or the desktop app's engine holds
 * `<project>/serve.lock` while it runs, so two queues never run jobs on one run store side by
 * side, each unaware of the other's. CLI runs (`normlab run`, `resume`) lock only their own run.
 */
import * as path from 'node:path';
import { fail } from '../core/errors.js';
import { releaseFileLock, takeFileLock } from '../store/file-lock.js';

const SERVE_LOCK = 'serve.lock';

/** Take the project's serve lock and return its path; refused in one line while another process serves it. */
export function holdProject(projectDir: string): string {
  const lock = path.join(projectDir, SERVE_LOCK);
  const attempt = takeFileLock(lock);
  if (!attempt.taken) {
    const holder = attempt.owner ? `process ${attempt.owner.pid}` : 'another process';
    fail('state', `project ${projectDir} is already open in ${holder} (a \`normlab serve\` or the NormLab app); use that one, or stop it first`);
  }
  return lock;
}

/** Give the project's serve lock back (see `holdProject`). */
export function releaseProject(lock: string): void {
  releaseFileLock(lock);
}
