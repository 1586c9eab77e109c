import { describe, it, expect } from 'vitest';
import { errorOfSync } from '../testing/helpers.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, parseSafetensors, serializeSafetensors, type HostTensor } from './safetensors.js';

/** Build a file from a header object exactly as given (key order kept), padded or not. */
function buildFile(header: Record<string, unknown>, data: Uint8Array, pad: boolean): Uint8Array {
  let h = new TextEncoder().encode(JSON.stringify(header));
  if (pad && h.length % 8 !== 0) {
    const p = new Uint8Array(Math.ceil(h.length / 8) * 8).fill(0x20);
    p.set(h);
    h = p;
  }
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function sample(): Record<string, HostTensor> {
  return {
    'transformer.h.0.ln_1.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2.5, 3, 0, 1e-8, 1e8]) },
    half: { dtype: 'F16', shape: [4], data: new Float32Array([1, -2, 0.5, 65504]) },
    brain: { dtype: 'BF16', shape: [2], data: new Float32Array([1, -3.140625]) },
    double: { dtype: 'F64', shape: [1], data: new Float32Array([0.25]) },
    bytes: { dtype: 'U8', shape: [3], data: new Uint8Array([0, 128, 255]) },
    signed: { dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) },
    ints: { dtype: 'I32', shape: [2], data: new Int32Array([-2147483648, 2147483647]) },
    longs: { dtype: 'I64', shape: [3], data: new Int32Array([-1, 0, 123456789]) },
    scalar: { dtype: 'F32', shape: [], data: new Float32Array([7]) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  };
}

describe('safetensors round trip', () => {
  it('reads back every dtype with its shape, values and metadata', () => {
    const tensors = sample();
    const bytes = serializeSafetensors(tensors, { format: 'pt', note: 'x' });
    const { tensors: back, metadata } = parseSafetensors(bytes, 'rt.safetensors');
    expect(metadata).toEqual({ format: 'pt', note: 'x' });
    expect([...back.keys()].sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const b = back.get(name)!;
      expect(b.dtype).toBe(t.dtype);
      expect(b.shape).toEqual(t.shape);
      expect(b.data.constructor).toBe(t.data.constructor);
      expect(Array.from(b.data)).toEqual(Array.from(t.data));
    }
  });

  it('pads the header to 8 bytes with spaces and sorts names', () => {
    const bytes = serializeSafetensors({ b: sample().ints, a: sample().bytes });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.trimEnd().length).toBeLessThanOrEqual(n);
    expect(text.indexOf('"a"')).toBeLessThan(text.indexOf('"b"'));
    expect(JSON.parse(text).a.data_offsets).toEqual([0, 3]);
  });

  it('accepts a Map and a Buffer-backed view at an odd offset', () => {
    const backing = new Uint8Array(11);
    const view = backing.subarray(1, 9);
    view.set([1, 2, 3, 4, 5, 6, 7, 8]);
    const bytes = serializeSafetensors(new Map([['v', { dtype: 'U8' as const, shape: [8], data: view }]]));
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const back = parseSafetensors(shifted.subarray(3), 'odd.safetensors').tensors.get('v')!;
    expect(Array.from(back.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('rejects data that does not match shape or dtype on write', () => {
    expect(errorOfSync(() => serializeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).code).toBe('shape');
    expect(errorOfSync(() => serializeSafetensors({ w: { dtype: 'I32', shape: [2], data: new Float32Array(2) } })).message).toContain('Int32Array');
  });
});

describe('half precision', () => {
  it('decodes F16 bit patterns to hand-computed values', () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x3800)).toBe(0.5);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(f16ToF32(0x0400)).toBe(2 ** -14); // smallest normal
    expect(f16ToF32(0x3555)).toBe(0.333251953125);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(f16ToF32(0x7e00))).toBe(true);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
  });

  it('encodes F16 with round-to-nearest-even, overflow to Inf and underflow to 0', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(1 / 3)).toBe(0x3555);
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(1e-9)).toBe(0x0000);
    expect(f32ToF16(NaN) & 0x7c00).toBe(0x7c00);
  });

  it('decodes BF16 bit patterns to hand-computed values', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc049)).toBe(-3.140625);
    expect(bf16ToF32(0x4000)).toBe(2);
    expect(bf16ToF32(0x3e80)).toBe(0.25);
    expect(bf16ToF32(0x7f80)).toBe(Infinity);
    expect(f32ToBf16(Math.PI)).toBe(0x4049);
    expect(f32ToBf16(1)).toBe(0x3f80);
  });

  it('reads F16 and BF16 tensors from raw bytes as Float32Array, dtype as stored', () => {
    const data = new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x49, 0xc0]);
    const file = buildFile({ h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] }, b: { dtype: 'BF16', shape: [2], data_offsets: [4, 8] } }, data, true);
    const { tensors } = parseSafetensors(file, 'half.safetensors');
    expect(tensors.get('h')!.dtype).toBe('F16');
    expect(tensors.get('h')!.data).toBeInstanceOf(Float32Array);
    expect(Array.from(tensors.get('h')!.data)).toEqual([1, -2]);
    expect(tensors.get('b')!.dtype).toBe('BF16');
    expect(Array.from(tensors.get('b')!.data)).toEqual([1, -3.140625]);
  });

  it('reads F16 and BF16 data that starts at an odd byte of the buffer', () => {
    const data = new Uint8Array([7, 0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x49, 0xc0]);
    const header = {
      u: { dtype: 'U8', shape: [1], data_offsets: [0, 1] },
      h: { dtype: 'F16', shape: [2], data_offsets: [1, 5] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [5, 9] },
    };
    const { tensors } = parseSafetensors(buildFile(header, data, true), 'odd.safetensors');
    expect(Array.from(tensors.get('h')!.data)).toEqual([1, -2]);
    expect(Array.from(tensors.get('b')!.data)).toEqual([1, -3.140625]);
  });
});

describe('files laid out as the reference (PyTorch) writer lays them out', () => {
  // safetensors.torch.save_file: compact JSON, "__metadata__" first, tensors ordered by dtype
  // size then name, little-endian data, header padded with spaces to 8 bytes.
  const data = new Uint8Array(24 + 16 + 4);
  const dv = new DataView(data.buffer);
  [1n, -1n, 7n].forEach((v, i) => dv.setBigInt64(i * 8, v, true));
  [1, 2, 3, 4].forEach((v, i) => dv.setFloat32(24 + i * 4, v, true));
  dv.setUint16(40, 0x3800, true); // 0.5
  dv.setUint16(42, 0xc000, true); // -2
  const header = {
    __metadata__: { format: 'pt' },
    'model.ids': { dtype: 'I64', shape: [3], data_offsets: [0, 24] },
    'model.layers.0.input_layernorm.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [24, 40] },
    'model.norm.weight': { dtype: 'F16', shape: [2], data_offsets: [40, 44] },
  };

  for (const pad of [true, false]) {
    it(`parses it ${pad ? 'with' : 'without'} header padding`, () => {
      const file = buildFile(header, data, pad);
      if (!pad) expect((file.length - 44) % 8).not.toBe(0); // the data really starts unaligned
      const { tensors, metadata } = parseSafetensors(file, 'model.safetensors');
      expect(metadata).toEqual({ format: 'pt' });
      expect(tensors.get('model.ids')).toEqual({ dtype: 'I64', shape: [3], data: new Int32Array([1, -1, 7]) });
      expect(tensors.get('model.layers.0.input_layernorm.weight')).toEqual({
        dtype: 'F32',
        shape: [2, 2],
        data: new Float32Array([1, 2, 3, 4]),
      });
      expect(Array.from(tensors.get('model.norm.weight')!.data)).toEqual([0.5, -2]);
    });
  }

  it('reports I64 values beyond int32 as a data error naming the tensor and index', () => {
    const d = new Uint8Array(16);
    new DataView(d.buffer).setBigInt64(8, 2n ** 40n, true);
    const err = errorOfSync(() => parseSafetensors(buildFile({ big: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, d, true), 'm.st'));
    expect(err.code).toBe('data');
    expect(err.message).toContain('"big"');
    expect(err.message).toContain('index 1');
  });
});

describe('corrupt files', () => {
  const valid = serializeSafetensors(sample(), { format: 'pt' });

  it('gives an io error for a file truncated at any point', () => {
    const n = Number(new DataView(valid.buffer).getBigUint64(0, true));
    for (const cut of [0, 3, 7, 8, 9, 8 + Math.floor(n / 2), 8 + n - 1, 8 + n, 8 + n + 5, valid.length - 1]) {
      const err = errorOfSync(() => parseSafetensors(valid.slice(0, cut), 'model.safetensors'));
      expect(err.code, `cut at ${cut}: ${err.message}`).toBe('io');
      expect(err.message).toContain('model.safetensors');
    }
  });

  it('says how much data the header wants when the data section is short', () => {
    const err = errorOfSync(() => parseSafetensors(valid.slice(0, valid.length - 10), 'model.safetensors'));
    expect(err.message).toMatch(/^model\.safetensors is truncated: header says \d+ bytes of data, file has \d+$/);
  });

  it('gives an io error when the header length field is corrupted', () => {
    for (const value of [2n ** 40n, BigInt(valid.length), 1n, 0n]) {
      const bad = valid.slice();
      new DataView(bad.buffer).setBigUint64(0, value, true);
      expect(errorOfSync(() => parseSafetensors(bad, 'x.safetensors')).code).toBe('io');
    }
    const flipped = valid.slice();
    flipped[7] ^= 0x80; // top bit of the length
    expect(errorOfSync(() => parseSafetensors(flipped, 'x.safetensors')).code).toBe('io');
  });

  it('rejects overlapping offsets, gaps, trailing bytes and size mismatches', () => {
    const d = new Uint8Array(8);
    const cases: Array<[Record<string, unknown>, Uint8Array, RegExp]> = [
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [2, 6] } }, d.subarray(0, 6), /overlap/],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, d.subarray(0, 4), /overlap/],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, d, /belong to no tensor/],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, d, /trailing bytes/],
      [{ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d, /needs 12/],
      [{ a: { dtype: 'Q4', shape: [1], data_offsets: [0, 8] } }, d, /unsupported dtype "Q4"/],
      [{ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } }, d, /invalid shape/],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, d, /invalid data_offsets/],
      [{ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, d, /truncated/],
      [{ __metadata__: { n: 1 }, a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, d, /not a string/],
    ];
    for (const [header, data, pattern] of cases) {
      const err = errorOfSync(() => parseSafetensors(buildFile(header, data, true), 'c.safetensors'));
      expect(err.code).toBe('io');
      expect(err.message).toMatch(pattern);
      expect(err.message).toContain('c.safetensors');
    }
  });

  it('rejects headers that are not JSON objects', () => {
    for (const text of ['{"a": ', '[1, 2]', 'null', '\u00ff\u00fe']) {
      const h = text === '\u00ff\u00fe' ? new Uint8Array([0xff, 0xfe]) : new TextEncoder().encode(text);
      const file = new Uint8Array(8 + h.length);
      new DataView(file.buffer).setBigUint64(0, BigInt(h.length), true);
      file.set(h, 8);
      const err = errorOfSync(() => parseSafetensors(file, 'j.safetensors'));
      expect(err.code).toBe('io');
      expect(err.message).not.toContain('\n');
    }
  });
});
