/**
 * Lock files shared by processes: a run's `run.lock`, a project's `serve.lock`, a cache folder's
 * lock. A lock is a file created exclusively that holds its owner's pid and process start time; a
 * lock whose process is gone (or whose pid now belongs to another process) is stale and is taken
 * over by one process at a time: the check and the replacement happen while holding
 * `<lock>.takeover` (also created exclusively), so two processes that both saw the stale lock
 * cannot both remove it and both create their own.
 */
import * as fs from 'node:fs';
import { asNormLabError, fail } from '../core/errors.js';

export interface LockOwner {
  pid: number;
  start: string | null;
}

/** The outcome of `takeFileLock`: taken, or held by `owner` (null while its owner is writing it). */
export type LockAttempt = { taken: true } | { taken: false; owner: LockOwner | null };

/** How old a `.takeover` file left by a killed process must be before it is ignored. */
const TAKEOVER_STALE_MS = 10_000;

/** Is a process with this pid alive (on this machine)? */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** When process `pid` started (Linux: clock ticks since boot, /proc/PID/stat field 22); null elsewhere. */
function processStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Is the process that wrote this lock still the one running under its pid? */
export function ownerAlive(owner: LockOwner): boolean {
  if (!pidAlive(owner.pid)) return false;
  if (owner.start === null) return true;
  const start = processStart(owner.pid);
  return start === null || start === owner.start;
}

/** The process holding a lock file, or null when there is none (or it is being written). */
export function lockOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: unknown; start?: unknown };
    return typeof o.pid === 'number' ? { pid: o.pid, start: typeof o.start === 'string' ? o.start : null } : null;
  } catch {
    return null;
  }
}

/**
 * Is the lock held, by this process or a live other one? An unreadable lock is being written by
 * its owner, unless it is older than `TAKEOVER_STALE_MS` (a writer killed mid-write, a full disk).
 */
function heldNow(file: string): { held: boolean; owner: LockOwner | null } {
  const owner = lockOwner(file);
  if (owner !== null) return { held: owner.pid === process.pid || ownerAlive(owner), owner };
  try {
    return { held: Date.now() - fs.statSync(file).mtimeMs <= TAKEOVER_STALE_MS, owner };
  } catch {
    return { held: false, owner }; // removed meanwhile
  }
}

/**
 * Take a lock file: `{taken: true}` when this process now holds it, otherwise the live owner. A
 * lock this process already holds counts as held (a second taker in one process is refused too).
 * Release it with `releaseFileLock`.
 */
export function takeFileLock(file: string): LockAttempt {
  const mine = JSON.stringify({ pid: process.pid, start: processStart(process.pid) });
  const create = (): boolean => {
    try {
      fs.writeFileSync(file, mine, { flag: 'wx' });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') fail('io', `cannot lock ${file}: ${asNormLabError(err).message}`);
      return false;
    }
  };
  if (create()) return { taken: true };
  const seen = heldNow(file);
  if (seen.held) return { taken: false, owner: seen.owner };
  return takeOverStale(file, create);
}

/** Replace a stale lock with ours while holding `<file>.takeover` (see the header). */
function takeOverStale(file: string, create: () => boolean): LockAttempt {
  const guard = `${file}.takeover`;
  try {
    fs.writeFileSync(guard, String(process.pid), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') fail('io', `cannot lock ${file}: ${asNormLabError(err).message}`);
    let age = 0;
    try {
      age = Date.now() - fs.statSync(guard).mtimeMs;
    } catch {
      /* gone meanwhile */
    }
    if (age <= TAKEOVER_STALE_MS) return { taken: false, owner: lockOwner(file) }; // another process is taking it over
    fs.rmSync(guard, { force: true });
    return takeOverStale(file, create);
  }
  try {
    const seen = heldNow(file); // it may have been replaced since we looked
    if (seen.held) return { taken: false, owner: seen.owner };
    fs.rmSync(file, { force: true }); // stale: its process is gone
    return create() ? { taken: true } : { taken: false, owner: lockOwner(file) };
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

/** Remove a lock file this process holds (see `takeFileLock`); another process's lock is left alone. */
export function releaseFileLock(file: string): void {
  if (lockOwner(file)?.pid === process.pid) fs.rmSync(file, { force: true });
}
