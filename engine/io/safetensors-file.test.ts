import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorOf, tempDir } from '../testing/helpers.js';
import { openSafetensors, readSafetensors } from './safetensors-file.js';
import { f32ToBf16, f32ToF16, parseSafetensors, serializeSafetensors, type HostTensor, type SafetensorsDtype } from './safetensors.js';

const GiB = 1024 ** 3;
/** Header bytes of the sparse files (padded with spaces), so tensor positions are known up front. */
const HEADER_BYTES = 2048;
const DATA_START = 8 + HEADER_BYTES;

interface Spec {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Bytes written at given offsets into the tensor's data; the rest is a hole (zeros). */
  writes?: { at: number; bytes: Uint8Array }[];
}

const SIZES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, I32: 4, I64: 8, F64: 8 };

/**
 * Write a safetensors file of `specs` (data in that order) as a sparse file: the header and the
 * given bytes are written, the file is extended with ftruncate, so it takes almost no disk.
 * Returns each tensor's absolute offset.
 */
function sparseSafetensors(file: string, specs: Spec[]): Map<string, number> {
  const header: Record<string, unknown> = {};
  const offsets = new Map<string, number>();
  let cursor = 0;
  for (const s of specs) {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * SIZES[s.dtype];
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [cursor, cursor + bytes] };
    offsets.set(s.name, DATA_START + cursor);
    cursor += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  expect(json.length).toBeLessThanOrEqual(HEADER_BYTES);
  const head = new Uint8Array(DATA_START).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(HEADER_BYTES), true);
  head.set(json, 8);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, head, 0, head.length, 0);
    fs.ftruncateSync(fd, DATA_START + cursor);
    for (const s of specs) for (const w of s.writes ?? []) fs.writeSync(fd, w.bytes, 0, w.bytes.length, offsets.get(s.name)! + w.at);
  } finally {
    fs.closeSync(fd);
  }
  return offsets;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function u16Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Uint16Array(values).buffer);
}

describe('openSafetensors on files past 2 and 4 GiB (sparse)', () => {
  it('reads tensors that straddle 2^31 and 2^32 and lie past 4 GiB exactly, without reading the rest', async () => {
    const file = path.join(tempDir('st-big'), 'big.safetensors');
    const bigElems = 40 * 1024 * 1024; // 80 MiB of BF16: more than one 64 MiB read chunk
    const chunkAt = 64 * 1024 * 1024; // byte offset of the second chunk inside "big"
    const atAbs = (abs: number, before: number) => abs - DATA_START - before;
    const specs: Spec[] = [
      { name: 'first', dtype: 'F32', shape: [2], writes: [{ at: 0, bytes: f32Bytes([1.5, -2]) }] },
      { name: 'gap1', dtype: 'U8', shape: [atAbs(2 ** 31 - 6, 8)] },
      { name: 'across2G', dtype: 'F32', shape: [3], writes: [{ at: 0, bytes: f32Bytes([3, 4.25, -5]) }] },
      { name: 'gap2', dtype: 'U8', shape: [atAbs(2 ** 32 - 10, 8 + atAbs(2 ** 31 - 6, 8) + 12)] },
      {
        name: 'big',
        dtype: 'BF16',
        shape: [bigElems / 1024, 1024],
        writes: [
          { at: 0, bytes: u16Bytes([f32ToBf16(1), f32ToBf16(-2)]) },
          { at: chunkAt - 2, bytes: u16Bytes([f32ToBf16(0.5), f32ToBf16(3.5)]) },
          { at: bigElems * 2 - 2, bytes: u16Bytes([f32ToBf16(-7)]) },
        ],
      },
      { name: 'gap3', dtype: 'U8', shape: [300 * 1024 * 1024] },
      { name: 'half', dtype: 'F16', shape: [3], writes: [{ at: 0, bytes: u16Bytes([1, -0.5, 65504].map(f32ToF16)) }] },
      { name: 'last', dtype: 'F32', shape: [2, 2], writes: [{ at: 0, bytes: f32Bytes([9, 8, 7, 6]) }] },
    ];
    const offsets = sparseSafetensors(file, specs);
    expect(offsets.get('across2G')).toBe(2 ** 31 - 6);
    expect(offsets.get('big')).toBe(2 ** 32 - 10);
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(4.3 * GiB);

    const st = await openSafetensors(file);
    try {
      expect(st.size).toBe(size);
      expect(st.names).toEqual(specs.map((s) => s.name));
      expect(st.info('last')).toEqual({ dtype: 'F32', shape: [2, 2], byteOffset: size - 16, byteLength: 16 });

      expect(Array.from((await st.readTensor('first')).data)).toEqual([1.5, -2]);
      expect(Array.from((await st.readTensor('across2G')).data)).toEqual([3, 4.25, -5]);
      const half = await st.readTensor('half');
      expect(half).toEqual({ dtype: 'F16', shape: [3], data: new Float32Array([1, -0.5, 65504]) });
      expect(await st.readTensor('last')).toEqual({ dtype: 'F32', shape: [2, 2], data: new Float32Array([9, 8, 7, 6]) });
      const raw = await st.readTensorRaw('half');
      expect(raw.dtype).toBe('F16');
      expect(Array.from(new Uint16Array(raw.bytes.buffer))).toEqual([1, -0.5, 65504].map(f32ToF16));

      let chunks = 0;
      let bytes = 0;
      const big = await st.readTensor('big', {
        onRead: (n) => {
          chunks += 1;
          bytes += n;
        },
      });
      expect(bytes).toBe(bigElems * 2);
      expect(chunks).toBe(2);
      expect(big.shape).toEqual([bigElems / 1024, 1024]);
      const d = big.data as Float32Array;
      expect(d.length).toBe(bigElems);
      expect([d[0], d[1], d[2]]).toEqual([1, -2, 0]);
      expect([d[chunkAt / 2 - 2], d[chunkAt / 2 - 1], d[chunkAt / 2], d[chunkAt / 2 + 1]]).toEqual([0, 0.5, 3.5, 0]);
      expect(d[bigElems - 1]).toBe(-7);
    } finally {
      await st.close();
      fs.rmSync(path.dirname(file), { recursive: true });
    }
  }, 60_000);

  it('validates a big file from its header alone: a file one byte short is truncated', async () => {
    const file = path.join(tempDir('st-big'), 'short.safetensors');
    sparseSafetensors(file, [
      { name: 'gap', dtype: 'U8', shape: [5 * GiB] },
      { name: 'w', dtype: 'F32', shape: [1] },
    ]);
    fs.truncateSync(file, fs.statSync(file).size - 1);
    const err = await errorOf(openSafetensors(file));
    fs.rmSync(path.dirname(file), { recursive: true });
    expect(err.code).toBe('io');
    expect(err.message).toBe(`${file} is truncated: header says ${5 * GiB + 4} bytes of data, file has ${5 * GiB + 3}`);
  });
});

describe('openSafetensors', () => {
  const tensors: Record<string, HostTensor> = {
    a32: { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, -2.5, 1e-8, 3]) },
    b16: { dtype: 'BF16', shape: [3], data: new Float32Array([1, -3.140625, 0]) },
    f16: { dtype: 'F16', shape: [2], data: new Float32Array([0.5, -65504]) },
    i64: { dtype: 'I64', shape: [2], data: new Int32Array([-1, 7]) },
    u8: { dtype: 'U8', shape: [3], data: new Uint8Array([0, 128, 255]) },
    empty: { dtype: 'BF16', shape: [0, 3], data: new Float32Array(0) },
  };

  function written(): { file: string; bytes: Uint8Array } {
    const file = path.join(tempDir('st'), 'model.safetensors');
    const bytes = serializeSafetensors(tensors, { format: 'pt' });
    fs.writeFileSync(file, bytes);
    return { file, bytes };
  }

  it('reads F32, BF16, F16 and the other dtypes as parseSafetensors does, and their raw bytes', async () => {
    const { file, bytes } = written();
    const parsed = parseSafetensors(bytes, file);
    const st = await openSafetensors(file);
    try {
      expect(st.metadata).toEqual({ format: 'pt' });
      expect(st.names).toEqual([...parsed.tensors.keys()]);
      for (const name of st.names) {
        const t = await st.readTensor(name);
        expect(t).toEqual(parsed.tensors.get(name));
        expect(t.data.constructor).toBe(tensors[name].data.constructor);
        const raw = await st.readTensorRaw(name);
        const info = st.info(name);
        expect(raw.bytes).toEqual(bytes.subarray(info.byteOffset, info.byteOffset + info.byteLength));
        expect(raw.bytes.byteOffset).toBe(0);
      }
      expect((await readSafetensors(file)).tensors).toEqual(parsed.tensors);
    } finally {
      await st.close();
    }
  });

  it('names the file for a missing tensor, and fails after close', async () => {
    const { file } = written();
    const st = await openSafetensors(file);
    expect(st.has('a32')).toBe(true);
    expect(st.has('nope')).toBe(false);
    expect((await errorOf(st.readTensor('nope'))).message).toBe(`${file} has no tensor "nope"`);
    await st.close();
    await st.close();
    const err = await errorOf(st.readTensor('a32'));
    expect(err.code).toBe('state');
    expect(err.message).toBe(`${file} is closed`);
  });

  it('names a truncated file, a header longer than the file, and a file shorter than 8 bytes', async () => {
    const { file, bytes } = written();
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 3));
    expect((await errorOf(openSafetensors(file))).message).toMatch(new RegExp(`^${file} is truncated: header says \\d+ bytes of data`));
    const lying = new Uint8Array(16);
    new DataView(lying.buffer).setBigUint64(0, 2n ** 40n, true);
    fs.writeFileSync(file, lying);
    expect((await errorOf(openSafetensors(file))).message).toBe(
      `${file} is truncated or not safetensors: header length field says ${2 ** 40} bytes, file has 8 after it`,
    );
    fs.writeFileSync(file, 'abc');
    expect((await errorOf(openSafetensors(file))).message).toBe(`${file} is not a safetensors file: it has 3 bytes, fewer than the 8-byte header length`);
  });

  it('fails when the file shrinks after it was opened, naming it', async () => {
    const { file } = written();
    const st = await openSafetensors(file);
    try {
      fs.truncateSync(file, st.info('u8').byteOffset);
      const err = await errorOf(st.readTensor('u8'));
      expect(err.code).toBe('io');
      expect(err.message).toMatch(new RegExp(`^${file} is truncated: it ends at byte \\d+, expected \\d+$`));
    } finally {
      await st.close();
    }
  });

  it('refuses a folder, a missing file, a character device and a FIFO at once with one line', async () => {
    const dir = tempDir('st');
    expect((await errorOf(openSafetensors(dir))).message).toBe(`${dir} is a folder, expected a .safetensors file`);
    expect((await errorOf(openSafetensors(path.join(dir, 'none')))).message).toBe(`${path.join(dir, 'none')} not found`);
    if (process.platform === 'win32') return;
    const dev = path.join(dir, 'zero.safetensors');
    fs.symlinkSync('/dev/zero', dev);
    expect((await errorOf(openSafetensors(dev))).message).toBe(`${dev} is a character device, expected a .safetensors file`);
    const fifo = path.join(dir, 'fifo.safetensors');
    execFileSync('mkfifo', [fifo]);
    const err = await errorOf(openSafetensors(fifo)); // opening a FIFO for reading would block without O_NONBLOCK
    expect(err.code).toBe('io');
    expect(err.message).toBe(`${fifo} is a FIFO, expected a .safetensors file`);
  });
});
