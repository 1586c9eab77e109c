/**
 * The safetensors format, pure (no node imports, so it runs in a browser too).
 *
 * Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {key: value}}`, then the data
 * buffer; offsets are relative to the start of the buffer. Parsing checks every invariant the
 * reference implementation checks (offsets contiguous and covering the buffer exactly, sizes
 * matching shape × dtype) and reports a one-line `NormLabError` with code 'io' naming the file.
 * Reading widens F16/BF16/F64 to Float32Array and narrows I64 to Int32Array (range-checked);
 * writing accepts every dtype listed in `SafetensorsDtype`. The header parser and the decoder are
 * exported separately so `safetensors-file.ts` can validate a file without reading its data and
 * decode one tensor (or one chunk of it) at a time.
 */
import { fail, jsonSyntaxMessage } from '../core/errors.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I8' | 'U8' | 'I32' | 'I64' | 'F64';

/**
 * A tensor in host memory. `dtype` is the on-disk dtype; `data` is the in-memory array:
 * Float32Array for F32/F16/BF16/F64, Int32Array for I32/I64, Int8Array for I8, Uint8Array for U8.
 */
export interface HostTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int8Array | Uint8Array | Int32Array;
}

export interface ParsedSafetensors {
  /** Tensors in the order of their data in the file. */
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I8: 1,
  U8: 1,
  I32: 4,
  I64: 8,
  F64: 8,
};

/** Largest header we accept (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function isSafetensorsDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, x);
}

/** Bytes per element of a dtype. */
export function dtypeBytes(dtype: SafetensorsDtype): number {
  return DTYPE_BYTES[dtype];
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// half-precision conversions

/** IEEE 754 binary16 bits → number. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** number → IEEE 754 binary16 bits, round to nearest even. */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    const m = mant | 0x800000; // implicit leading 1
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half += 1; // may carry into exp: fine
  return sign | half;
}

/** bfloat16 bits → number. */
export function bf16ToF32(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0];
}

/** number → bfloat16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

// ---------------------------------------------------------------------------------------------
// parsing

/**
 * One tensor of a safetensors header: its on-disk dtype, shape, and data range `[begin, end)`
 * relative to the start of the data buffer (which starts at byte `8 + header length` of the file).
 */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** A parsed and validated header. */
export interface SafetensorsHeader {
  /** Tensors in the order of their data in the file. */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function parseEntry(name: string, value: unknown, file: string): SafetensorsEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail('io', `${file}: header entry "${name}" is not an object`);
  }
  const v = value as Record<string, unknown>;
  if (!isSafetensorsDtype(v.dtype)) {
    const supported = Object.keys(DTYPE_BYTES).join(', ');
    fail('io', `${file}: tensor "${name}" has unsupported dtype ${JSON.stringify(v.dtype)} (supported: ${supported})`);
  }
  if (!Array.isArray(v.shape) || !v.shape.every(isNonNegInt)) {
    fail('io', `${file}: tensor "${name}" has an invalid shape ${JSON.stringify(v.shape)}`);
  }
  const off = v.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !isNonNegInt(off[0]) || !isNonNegInt(off[1]) || off[1] < off[0]) {
    fail('io', `${file}: tensor "${name}" has invalid data_offsets ${JSON.stringify(off)}`);
  }
  const shape = v.shape as number[];
  const [begin, end] = off as [number, number];
  const expected = numel(shape) * DTYPE_BYTES[v.dtype];
  if (end - begin !== expected) {
    fail('io', `${file}: tensor "${name}" has ${end - begin} bytes but shape [${shape.join(', ')}] × ${v.dtype} needs ${expected}`);
  }
  return { name, dtype: v.dtype, shape: [...shape], begin, end };
}

/**
 * The header length N from the first bytes of a file of `fileSize` bytes (`prefix` holds its first
 * 8 bytes, or all of it when it is shorter). Checks that the header fits in the file and under the
 * reference implementation's size limit; errors name `name`.
 */
export function safetensorsHeaderLength(prefix: Uint8Array, fileSize: number, name: string): number {
  if (fileSize < 8) {
    fail('io', `${name} is not a safetensors file: it has ${fileSize} bytes, fewer than the 8-byte header length`);
  }
  const headerLen64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  const available = fileSize - 8;
  if (headerLen64 > BigInt(available)) {
    fail('io', `${name} is truncated or not safetensors: header length field says ${headerLen64} bytes, file has ${available} after it`);
  }
  const headerLen = Number(headerLen64);
  if (headerLen > MAX_HEADER_BYTES) {
    fail('io', `${name}: header of ${headerLen} bytes is larger than the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (headerLen < 2) fail('io', `${name}: header is ${headerLen} bytes, too short to hold JSON`);
  return headerLen;
}

/**
 * Parse the JSON header (the N bytes after the length field) of a file whose data buffer holds
 * `dataLength` bytes, and check every invariant without touching the data: entries well formed,
 * sizes matching shape × dtype, offsets contiguous and covering the data buffer exactly.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number, name: string): SafetensorsHeader {
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail('io', `${name}: header is not valid UTF-8 (is this a safetensors file?)`);
  }
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (err) {
    fail('io', `${name}: header is not valid JSON (${jsonSyntaxMessage(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail('io', `${name}: header is not a JSON object`);
  }

  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        fail('io', `${name}: __metadata__ is not an object of strings`);
      }
      for (const [mk, mv] of Object.entries(value as Record<string, unknown>)) {
        if (typeof mv !== 'string') fail('io', `${name}: __metadata__ value for "${mk}" is not a string`);
        metadata[mk] = mv;
      }
      continue;
    }
    entries.push(parseEntry(key, value, name));
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let neededEnd = 0;
  for (const e of entries) neededEnd = Math.max(neededEnd, e.end);
  if (neededEnd > dataLength) {
    fail('io', `${name} is truncated: header says ${neededEnd} bytes of data, file has ${dataLength}`);
  }
  let cursor = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.begin < cursor) {
      const prev = entries[i - 1];
      fail('io', `${name}: tensors "${prev.name}" [${prev.begin}, ${prev.end}) and "${e.name}" [${e.begin}, ${e.end}) overlap`);
    }
    if (e.begin > cursor) {
      fail('io', `${name}: data bytes [${cursor}, ${e.begin}) belong to no tensor (before "${e.name}")`);
    }
    cursor = e.end;
  }
  if (cursor !== dataLength) {
    fail('io', `${name}: ${dataLength - cursor} trailing bytes after the last tensor (data is ${dataLength} bytes, tensors cover ${cursor})`);
  }
  return { entries, metadata };
}

/** Bytes per element of the in-memory array a dtype reads into (see `HostTensor`). */
export function hostBytes(dtype: SafetensorsDtype): number {
  return dtype === 'I8' || dtype === 'U8' ? 1 : 4;
}

/** The zeroed in-memory array for `n` elements of a tensor stored as `dtype`. */
export function allocHostData(dtype: SafetensorsDtype, n: number): HostTensor['data'] {
  switch (dtype) {
    case 'U8':
      return new Uint8Array(n);
    case 'I8':
      return new Int8Array(n);
    case 'I32':
    case 'I64':
      return new Int32Array(n);
    case 'F32':
    case 'F16':
    case 'BF16':
    case 'F64':
      return new Float32Array(n);
  }
}

/** Whether a dtype's bytes on disk are its in-memory array's bytes (no conversion on this host). */
export function storedAsIs(dtype: SafetensorsDtype): boolean {
  return dtype === 'U8' || dtype === 'I8' || (LITTLE_ENDIAN && (dtype === 'F32' || dtype === 'I32'));
}

let f16Values: Float32Array | undefined;

/** Every binary16 bit pattern's value (256 KiB, built on first use): widening is one lookup. */
function f16Table(): Float32Array {
  if (!f16Values) {
    f16Values = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Values[h] = f16ToF32(h);
  }
  return f16Values;
}

/** `src` as little-endian uint16 values: a view when the host and alignment allow, else a copy. */
function littleEndianU16(src: Uint8Array): Uint16Array {
  const n = src.length / 2;
  if (LITTLE_ENDIAN && src.byteOffset % 2 === 0) return new Uint16Array(src.buffer, src.byteOffset, n);
  const view = new DataView(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getUint16(i * 2, true);
  return out;
}

/**
 * Convert `src` (a whole number of elements of tensor `tensor`, as stored on disk) into `out`
 * (from `allocHostData`) starting at element `at`. Widens F16/BF16/F64 to float32 and narrows
 * I64 to int32, failing with `NormLabError('data')` for a value outside the int32 range.
 */
export function decodeInto(tensor: { name: string; dtype: SafetensorsDtype }, src: Uint8Array, out: HostTensor['data'], at: number, file: string): void {
  const size = DTYPE_BYTES[tensor.dtype];
  const n = src.length / size;
  if (storedAsIs(tensor.dtype)) {
    new Uint8Array(out.buffer, out.byteOffset + at * size, src.length).set(src);
    return;
  }
  const view = new DataView(src.buffer, src.byteOffset, src.length);
  switch (tensor.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[at + i] = view.getFloat32(i * 4, true);
      return;
    case 'I32':
      for (let i = 0; i < n; i++) out[at + i] = view.getInt32(i * 4, true);
      return;
    case 'F16': {
      const table = f16Table();
      const u16 = littleEndianU16(src);
      for (let i = 0; i < n; i++) out[at + i] = table[u16[i]];
      return;
    }
    case 'BF16': {
      const u32 = new Uint32Array(out.buffer, out.byteOffset + at * 4, n);
      const u16 = littleEndianU16(src);
      for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
      return;
    }
    case 'F64':
      for (let i = 0; i < n; i++) out[at + i] = view.getFloat64(i * 8, true);
      return;
    case 'I64':
      for (let i = 0; i < n; i++) {
        const lo = view.getUint32(i * 8, true);
        const hi = view.getInt32(i * 8 + 4, true);
        const ok = (hi === 0 && lo < 0x80000000) || (hi === -1 && lo >= 0x80000000);
        if (!ok) {
          const value = (BigInt(hi) << 32n) | BigInt(lo);
          fail('data', `${file}: tensor "${tensor.name}" (I64) holds ${value} at index ${at + i}, outside the int32 range`);
        }
        out[at + i] = lo | 0;
      }
      return;
  }
}

/**
 * Parse a safetensors file held in memory. `name` (usually the path) names the file in errors.
 * Throws `NormLabError('io')` for every malformed file, `NormLabError('data')` for I64 values that
 * do not fit int32.
 */
export function parseSafetensors(bytes: Uint8Array, name: string): ParsedSafetensors {
  const headerLen = safetensorsHeaderLength(bytes.subarray(0, 8), bytes.length, name);
  const dataStart = 8 + headerLen;
  const { entries, metadata } = parseSafetensorsHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, name);
  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    const data = allocHostData(e.dtype, numel(e.shape));
    decodeInto(e, bytes.subarray(dataStart + e.begin, dataStart + e.end), data, 0, name);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------------------------
// serializing

function expectedArray(dtype: SafetensorsDtype): 'Float32Array' | 'Int32Array' | 'Int8Array' | 'Uint8Array' {
  switch (dtype) {
    case 'F32':
    case 'F16':
    case 'BF16':
    case 'F64':
      return 'Float32Array';
    case 'I32':
    case 'I64':
      return 'Int32Array';
    case 'I8':
      return 'Int8Array';
    case 'U8':
      return 'Uint8Array';
  }
}

function checkTensor(name: string, t: HostTensor): void {
  if (name === '' || name === '__metadata__') fail('shape', `cannot write a tensor named "${name}"`);
  if (!isSafetensorsDtype(t.dtype)) fail('shape', `tensor "${name}": unsupported dtype ${String(t.dtype)}`);
  if (!Array.isArray(t.shape) || !t.shape.every(isNonNegInt)) {
    fail('shape', `tensor "${name}": invalid shape ${JSON.stringify(t.shape)}`);
  }
  const want = expectedArray(t.dtype);
  const ctor = { Float32Array, Int32Array, Int8Array, Uint8Array }[want];
  if (!(t.data instanceof ctor)) {
    fail('shape', `tensor "${name}": dtype ${t.dtype} needs a ${want}, got ${t.data?.constructor?.name ?? typeof t.data}`);
  }
  const n = numel(t.shape);
  if (t.data.length !== n) {
    fail('shape', `tensor "${name}": shape [${t.shape.join(', ')}] has ${n} elements but data has ${t.data.length}`);
  }
}

function encodeInto(t: HostTensor, out: Uint8Array, offset: number): void {
  const n = t.data.length;
  const bytes = n * DTYPE_BYTES[t.dtype];
  const view = new DataView(out.buffer, out.byteOffset + offset, bytes);
  const src = t.data;
  switch (t.dtype) {
    case 'U8':
    case 'I8':
      out.set(new Uint8Array(src.buffer, src.byteOffset, n), offset);
      return;
    case 'F32':
    case 'I32':
      if (LITTLE_ENDIAN) {
        out.set(new Uint8Array(src.buffer, src.byteOffset, n * 4), offset);
      } else if (t.dtype === 'F32') {
        for (let i = 0; i < n; i++) view.setFloat32(i * 4, src[i], true);
      } else {
        for (let i = 0; i < n; i++) view.setInt32(i * 4, src[i], true);
      }
      return;
    case 'F16':
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToF16(src[i]), true);
      return;
    case 'BF16':
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToBf16(src[i]), true);
      return;
    case 'F64':
      for (let i = 0; i < n; i++) view.setFloat64(i * 8, src[i], true);
      return;
    case 'I64':
      for (let i = 0; i < n; i++) {
        view.setInt32(i * 8, src[i], true);
        view.setInt32(i * 8 + 4, src[i] < 0 ? -1 : 0, true);
      }
      return;
  }
}

/**
 * Serialize tensors (names sorted, data contiguous in that order) and optional string metadata.
 * The header is padded with spaces to a multiple of 8 bytes, as the reference implementation does.
 */
export function serializeSafetensors(tensors: Record<string, HostTensor> | Map<string, HostTensor>, metadata?: Record<string, string>): Uint8Array {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const names = [...map.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail('config', `safetensors metadata "${k}" must be a string, got ${typeof v}`);
      meta[k] = v;
    }
    header.__metadata__ = meta;
  }
  let offset = 0;
  for (const name of names) {
    const t = map.get(name)!;
    checkTensor(name, t);
    const size = t.data.length * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(headerBytes);
    headerBytes = p;
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const t = map.get(name)!;
    encodeInto(t, out, at);
    at += t.data.length * DTYPE_BYTES[t.dtype];
  }
  return out;
}
