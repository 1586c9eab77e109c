/**
 * Atomic file writes and checked JSON reads (node only).
 *
 * A write goes to a temporary file in the same folder, is fsynced, renamed over the target and the
 * folder is fsynced, so a reader (or a crash) sees either the old file or the new one, never a
 * half-written one. Every failure is a one-line `NormLabError` naming the file.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fail, jsonSyntaxMessage, NormLabError } from '../core/errors.js';

function errnoOf(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}

function writeError(target: string, err: unknown): never {
  if (err instanceof NormLabError) throw err;
  const code = errnoOf(err);
  const dir = path.dirname(target);
  if (code === 'ENOENT') fail('io', `cannot write ${target}: folder ${dir} does not exist`);
  if (code === 'EACCES' || code === 'EPERM') fail('io', `cannot write ${target}: permission denied`);
  if (code === 'ENOSPC') fail('io', `cannot write ${target}: no space left on device`);
  if (code === 'EISDIR') fail('io', `cannot write ${target}: it is a folder`);
  if (code === 'ENOTDIR') fail('io', `cannot write ${target}: a parent of it is not a folder`);
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  fail('io', `cannot write ${target}: ${message}`);
}

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Fsync a folder so a rename inside it is durable; platforms that cannot (Windows) are skipped. */
async function fsyncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    // Opening or syncing a directory is not supported everywhere; the rename is still atomic.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // See fsyncDir.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** Write `data` to `target` atomically: temp file in the same folder, fsync, rename, fsync folder. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempName(target);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, 'wx', 0o644);
    await handle.writeFile(toBytes(data));
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, target);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await fsp.unlink(tmp).catch(() => undefined);
    writeError(target, err);
  }
  await fsyncDir(path.dirname(target));
}

/** Synchronous `writeFileAtomic`, for exit handlers and other places that cannot await. */
export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  const tmp = tempName(target);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    fs.writeFileSync(fd, toBytes(data));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; keep the first error
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      // the temp file may not exist
    }
    writeError(target, err);
  }
  fsyncDirSync(path.dirname(target));
}

function jsonText(target: string, obj: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(obj, null, 2);
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    fail('internal', `cannot write ${target}: value is not JSON-serializable (${message})`);
  }
  if (text === undefined) fail('internal', `cannot write ${target}: value is not JSON-serializable`);
  return text + '\n';
}

/** Write `obj` as 2-space indented JSON plus a trailing newline, atomically. */
export async function writeJsonAtomic(target: string, obj: unknown): Promise<void> {
  await writeFileAtomic(target, jsonText(target, obj));
}

/** Synchronous `writeJsonAtomic`. */
export function writeJsonAtomicSync(target: string, obj: unknown): void {
  writeFileAtomicSync(target, jsonText(target, obj));
}

function readError(file: string, what: string, err: unknown): never {
  const code = errnoOf(err);
  if (code === 'ENOENT') fail('io', `${what} not found: ${file}`);
  if (code === 'EISDIR') fail('io', `${what} is a folder, expected a file: ${file}`);
  if (code === 'EACCES' || code === 'EPERM') fail('io', `cannot read ${what} ${file}: permission denied`);
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  fail('io', `cannot read ${what} ${file}: ${message}`);
}

function parseJsonText(file: string, what: string, text: string): unknown {
  if (text.trim() === '') fail('io', `${what} ${file} is empty, expected JSON`);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    fail('io', `${what} ${file} is not valid JSON: ${jsonSyntaxMessage(err)}`);
  }
}

/** What a path is, when not a regular file or a folder ("a character device"). */
function specialKind(st: fs.Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function sizeText(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Read a whole input file (a config, a text or token file, an image), refusing before reading
 * anything what is not a regular file (a device, a FIFO: read until memory runs out, or forever)
 * or is larger than `maxBytes`. Opened non-blocking, so a FIFO is refused at once.
 */
export function readInputFileSync(file: string, what: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0));
  } catch (err) {
    readError(file, what, err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) fail('io', `${what} is a folder, expected a file: ${file}`);
    if (!st.isFile()) fail('io', `${what} ${file} is ${specialKind(st)}, expected a regular file`);
    if (st.size > maxBytes) fail('io', `${what} ${file} is ${sizeText(st.size)}, more than the ${sizeText(maxBytes)} it may be`);
    return fs.readFileSync(fd);
  } catch (err) {
    if (err instanceof NormLabError) throw err;
    readError(file, what, err);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Read and parse a JSON file. `what` names it in errors ("config.json", "run record"):
 * "config.json not found: /x/config.json", "config.json /x/config.json is not valid JSON: ...".
 */
export async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    readError(file, what, err);
  }
  return parseJsonText(file, what, text);
}

/** Synchronous `readJson`. */
export function readJsonSync(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    readError(file, what, err);
  }
  return parseJsonText(file, what, text);
}
