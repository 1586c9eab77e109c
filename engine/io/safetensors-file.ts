/**
 * Safetensors files on disk (node only). `openSafetensors` reads and validates only the 8-byte
 * length and the header, then reads one tensor at a time by positioned reads on the open file, in
 * chunks, so files and offsets past 2 and 4 GiB work and memory holds one tensor, never the file.
 * `readSafetensors` reads a whole file that way; `writeSafetensors` writes one atomically. The
 * format itself lives in the node-free `safetensors.ts`.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { fail, NormLabError } from '../core/errors.js';
import { writeFileAtomic } from './atomic.js';
import {
  allocHostData,
  decodeInto,
  dtypeBytes,
  hostBytes,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  serializeSafetensors,
  storedAsIs,
  type HostTensor,
  type ParsedSafetensors,
  type SafetensorsDtype,
} from './safetensors.js';

/** Where one tensor lies in its file. */
export interface SafetensorsTensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute position of its first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

/** A tensor's bytes as stored on disk (little-endian, not widened), in a fresh ArrayBuffer. */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

export interface ReadTensorOptions {
  /** Called after each chunk with the number of bytes just read. */
  onRead?: (bytes: number) => void;
}

/** An open safetensors file whose header has been validated; its tensors are read on demand. */
export interface SafetensorsFile {
  /** The path, as given (errors name it). */
  readonly file: string;
  /** File size in bytes. */
  readonly size: number;
  /** Tensor names in the order of their data in the file. */
  readonly names: readonly string[];
  /** The header's `__metadata__`. */
  readonly metadata: Record<string, string>;
  /** Whether the file holds a tensor `name`. */
  has(name: string): boolean;
  /** Dtype, shape and byte range of tensor `name` (fails if the file has none). */
  info(name: string): SafetensorsTensorInfo;
  /** Read tensor `name` as a `HostTensor` (F16/BF16/F64 widened, I64 narrowed, as `parseSafetensors`). */
  readTensor(name: string, opts?: ReadTensorOptions): Promise<HostTensor>;
  /** Read tensor `name`'s bytes as stored. */
  readTensorRaw(name: string, opts?: ReadTensorOptions): Promise<RawTensor>;
  /** Close the file; later reads fail. Closing twice is fine. */
  close(): Promise<void>;
}

/** Largest single read; also the scratch size for tensors that are converted while read. */
const CHUNK_BYTES = 64 * 1024 * 1024;

function errnoOf(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}

function readFailure(file: string, err: unknown): never {
  if (err instanceof NormLabError) throw err;
  const code = errnoOf(err);
  if (code === 'ENOENT') fail('io', `${file} not found`);
  if (code === 'EISDIR') fail('io', `${file} is a folder, expected a .safetensors file`);
  if (code === 'EACCES' || code === 'EPERM') fail('io', `cannot read ${file}: permission denied`);
  const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
  fail('io', `cannot read ${file}: ${msg}`);
}

function fileKind(stat: fs.Stats): string {
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

class OpenSafetensors implements SafetensorsFile {
  readonly names: readonly string[];
  private closed = false;

  constructor(
    readonly file: string,
    readonly size: number,
    readonly metadata: Record<string, string>,
    private readonly handle: fsp.FileHandle,
    private readonly tensors: Map<string, SafetensorsTensorInfo>,
  ) {
    this.names = [...tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const t = this.tensors.get(name);
    if (!t) fail('io', `${this.file} has no tensor "${name}"`);
    return t;
  }

  async readTensor(name: string, opts: ReadTensorOptions = {}): Promise<HostTensor> {
    const t = this.info(name);
    const n = t.byteLength / dtypeBytes(t.dtype);
    this.checkArraySize(name, n * hostBytes(t.dtype));
    const data = allocHostData(t.dtype, n);
    if (storedAsIs(t.dtype)) {
      await this.readInto(new Uint8Array(data.buffer), t.byteOffset, opts.onRead);
    } else {
      const scratch = new Uint8Array(Math.min(CHUNK_BYTES, t.byteLength));
      for (let done = 0; done < t.byteLength; done += scratch.length) {
        const part = scratch.subarray(0, Math.min(scratch.length, t.byteLength - done));
        await this.readInto(part, t.byteOffset + done, opts.onRead);
        decodeInto({ name, dtype: t.dtype }, part, data, done / dtypeBytes(t.dtype), this.file);
      }
    }
    return { dtype: t.dtype, shape: [...t.shape], data };
  }

  async readTensorRaw(name: string, opts: ReadTensorOptions = {}): Promise<RawTensor> {
    const t = this.info(name);
    this.checkArraySize(name, t.byteLength);
    const bytes = new Uint8Array(t.byteLength);
    await this.readInto(bytes, t.byteOffset, opts.onRead);
    return { dtype: t.dtype, shape: [...t.shape], bytes };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  private checkArraySize(name: string, bytes: number): void {
    if (bytes > bufferConstants.MAX_LENGTH) {
      fail('io', `${this.file}: tensor "${name}" needs ${bytes} bytes in memory, more than one array can hold here (${bufferConstants.MAX_LENGTH})`);
    }
  }

  private async readInto(dest: Uint8Array, position: number, onRead: ((bytes: number) => void) | undefined): Promise<void> {
    if (this.closed) fail('state', `${this.file} is closed`);
    await readFully(this.handle, dest, position, this.file, onRead);
  }
}

/**
 * Fill `dest` from the file at `position` by positioned reads of at most CHUNK_BYTES, calling
 * `onRead` after each; a file that ends early is an error naming `file`.
 */
async function readFully(handle: fsp.FileHandle, dest: Uint8Array, position: number, file: string, onRead?: (bytes: number) => void): Promise<void> {
  let done = 0;
  while (done < dest.length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(dest, done, Math.min(CHUNK_BYTES, dest.length - done), position + done));
    } catch (err) {
      readFailure(file, err);
    }
    if (bytesRead === 0) fail('io', `${file} is truncated: it ends at byte ${position + done}, expected ${position + dest.length}`);
    done += bytesRead;
    onRead?.(bytesRead);
  }
}

/**
 * Open a safetensors file and validate its header (every check `parseSafetensors` makes, with the
 * file size standing for the buffer) without reading any tensor data. Only regular files are
 * accepted: a folder, device, FIFO or socket is refused right after opening (without blocking on a
 * FIFO). Errors are one-line `NormLabError('io')`s naming `file`.
 */
export async function openSafetensors(file: string): Promise<SafetensorsFile> {
  let handle: fsp.FileHandle;
  try {
    // O_NONBLOCK so opening a FIFO returns at once (to be refused below); no effect on regular files.
    handle = await fsp.open(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0));
  } catch (err) {
    readFailure(file, err);
  }
  try {
    let stat: fs.Stats;
    try {
      stat = await handle.stat();
    } catch (err) {
      readFailure(file, err);
    }
    if (stat.isDirectory()) fail('io', `${file} is a folder, expected a .safetensors file`);
    if (!stat.isFile()) fail('io', `${file} is ${fileKind(stat)}, expected a .safetensors file`);
    const size = stat.size;
    const prefix = new Uint8Array(8);
    if (size >= 8) await readFully(handle, prefix, 0, file);
    const headerLen = safetensorsHeaderLength(prefix, size, file);
    const headerBytes = new Uint8Array(headerLen);
    await readFully(handle, headerBytes, 8, file);
    const dataStart = 8 + headerLen;
    const { entries, metadata } = parseSafetensorsHeader(headerBytes, size - dataStart, file);
    const tensors = new Map<string, SafetensorsTensorInfo>();
    for (const e of entries) {
      tensors.set(e.name, { dtype: e.dtype, shape: e.shape, byteOffset: dataStart + e.begin, byteLength: e.end - e.begin });
    }
    return new OpenSafetensors(file, size, metadata, handle, tensors);
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

/** Read and validate a whole safetensors file, one tensor at a time; errors name `file`. */
export async function readSafetensors(file: string): Promise<ParsedSafetensors> {
  const st = await openSafetensors(file);
  try {
    const tensors = new Map<string, HostTensor>();
    for (const name of st.names) tensors.set(name, await st.readTensor(name));
    return { tensors, metadata: st.metadata };
  } finally {
    await st.close();
  }
}

/** Serialize `tensors` (+ optional string metadata) and write them to `file` atomically. */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, HostTensor> | Map<string, HostTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}
