/**
 * A Hugging Face decoder evaluated one block at a time, for checkpoints whose float32 weights do
 * not fit the backend (the wasm heap holds 4 GiB at most) or would take several times the file's
 * size in memory (a bf16 file widened to float32 is twice its size).
 *
 * What stays in memory: the embedding (and an untied head) as stored on disk (bf16 stays 2 bytes
 * a value; rows are gathered and widened on the host, and the head is widened one vocabulary chunk
 * at a time when the loss is taken), the final norm, and the residual streams of the windows being
 * evaluated (host float32). A pass reads
 * block ℓ's weights from the file, widens them to float32, runs every window (and every pruned
 * variant of the model, see ../methods/lns/streamed-diagnostics.ts) through it and frees it before
 * block ℓ + 1. The math is the shared decoder's (./decoder.ts): Decoder.block, Decoder.finalNorm
 * and the same soft-capping, so a streamed and an in-memory evaluation agree to float rounding.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import type { ModelDirReader } from '../io/model-dir.js';
import type { RawTensor } from '../io/safetensors-file.js';
import { f16ToF32 } from '../io/safetensors.js';
import { toTf } from '../io/tensors.js';
import { blockParams, Decoder, decoderParams, type DecoderSpec } from './decoder.js';
import { LOGITS_BUDGET } from './memory.js';
import { checkAllUsed } from './used.js';

/** Rows of the head multiplied at once: 8192 × width floats per chunk. */
const HEAD_CHUNK_ROWS = 8192;

/** A (rows, width) matrix as stored on disk, from which rows are widened to float32 on demand. */
class StoredRows {
  private readonly u16: Uint16Array | null;
  private readonly f32: Float32Array | null;
  constructor(
    readonly raw: RawTensor,
    readonly width: number,
    where: string,
  ) {
    const { dtype, bytes } = raw;
    if (dtype !== 'BF16' && dtype !== 'F16' && dtype !== 'F32') fail('model', `${where} is ${dtype}; expected a floating-point tensor`);
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    this.u16 = dtype === 'F32' ? null : new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
    this.f32 = dtype === 'F32' ? new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4) : null;
  }

  get rows(): number {
    return this.raw.shape[0];
  }

  /** Write row r (widened) into out at offset o. */
  private copyRow(r: number, out: Float32Array, o: number): void {
    const C = this.width;
    if (this.f32) {
      out.set(this.f32.subarray(r * C, (r + 1) * C), o);
      return;
    }
    const src = this.u16!;
    if (this.raw.dtype === 'BF16') {
      const bits = new Uint32Array(out.buffer, out.byteOffset + o * 4, C);
      for (let c = 0; c < C; c++) bits[c] = src[r * C + c] << 16; // bf16 is the high half of a float32
    } else for (let c = 0; c < C; c++) out[o + c] = f16ToF32(src[r * C + c]);
  }

  /** The rows `ids` (any order, repeats allowed) as float32 (ids.length, width). */
  gather(ids: ArrayLike<number>): Float32Array {
    const out = new Float32Array(ids.length * this.width);
    for (let n = 0; n < ids.length; n++) this.copyRow(ids[n], out, n * this.width);
    return out;
  }

  /** Rows [r0, r1) as float32. */
  range(r0: number, r1: number): Float32Array {
    const out = new Float32Array((r1 - r0) * this.width);
    for (let r = r0; r < r1; r++) this.copyRow(r, out, (r - r0) * this.width);
    return out;
  }
}

export class StreamedDecoder {
  private loaded = -1;

  private constructor(
    readonly spec: DecoderSpec,
    private readonly reader: ModelDirReader,
    private readonly model: Decoder,
    private readonly embedRows: StoredRows,
    private readonly headRows: StoredRows,
    private readonly positions: Float32Array | null,
    private readonly nameOf: (name: string) => string,
    /** Bytes of the checkpoint's weights as stored. */
    readonly storedBytes: number,
  ) {}

  /** Open a model folder whose config has been read into `spec`: the embedding, head and final norm are read now. */
  static async open(reader: ModelDirReader, spec: DecoderSpec): Promise<StreamedDecoder> {
    const model = new Decoder(spec, reader.config, { allocate: false });
    // The checkpoint's name of a parameter: as the spec names it, or without the optional prefix.
    const weights = await reader.weights();
    const present = new Set(weights.names);
    const nameOf = (name: string) => {
      const p = spec.optionalPrefix;
      if (!present.has(name) && p && name.startsWith(p) && present.has(name.slice(p.length))) return name.slice(p.length);
      if (!present.has(name)) fail('model', `${reader.dir} has no tensor ${name}, which a ${spec.family} of this config.json has`);
      return name;
    };
    const expected = decoderParams(spec).map((p) => p.name);
    checkAllUsed(weights.names, new Set(expected.map((n) => (present.has(n) ? n : nameOf(n)))), reader.dir, spec.family);
    try {
      const embed = new StoredRows(await reader.readRaw(nameOf(spec.names.embed)), spec.width, spec.names.embed);
      const head = spec.tied ? embed : new StoredRows(await reader.readRaw(nameOf(spec.names.head!)), spec.width, spec.names.head!);
      for (const rows of [embed, head])
        if (rows.raw.shape.length !== 2 || rows.raw.shape[0] !== spec.vocab || rows.raw.shape[1] !== spec.width)
          fail('model', `${reader.dir}: an embedding or head of shape [${rows.raw.shape}], the config says [${spec.vocab}, ${spec.width}]`);
      for (const name of ['weight', 'bias']) {
        const full = `${spec.names.finalNorm}.${name}`;
        if (name === 'bias' && !spec.norm.bias) continue;
        model.setParam(full, toTf(await reader.read(nameOf(full))));
      }
      let positions: Float32Array | null = null;
      if (spec.names.positions) {
        const wpe = new StoredRows(await reader.readRaw(nameOf(spec.names.positions)), spec.width, spec.names.positions);
        if (wpe.rows !== spec.maxSeq) fail('model', `${spec.names.positions} has ${wpe.rows} rows, the config says ${spec.maxSeq} positions`);
        positions = wpe.range(0, wpe.rows);
      }
      return new StreamedDecoder(spec, reader, model, embed, head, positions, nameOf, weights.totalBytes);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }

  get nLayers(): number {
    return this.spec.layers;
  }
  get vocabSize(): number {
    return this.spec.vocab;
  }
  get maxSeq(): number {
    return this.spec.maxSeq;
  }

  /** x_0 of windows of T token ids (B·T): the embedding rows widened to float32 (+ learned positions) and scaled, on the host. */
  embed(ids: ArrayLike<number>, T: number): Float32Array {
    const x = this.embedRows.gather(ids);
    const C = this.spec.width;
    if (this.positions) for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i] + this.positions[(Math.floor(i / C) % T) * C + (i % C)]);
    const s = Math.fround(this.spec.embedScale);
    if (s !== 1) for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i] * s);
    return x;
  }

  /** Read block i's weights (float32 on the backend), freeing the block loaded before. */
  async loadBlock(i: number): Promise<void> {
    if (this.loaded === i) return;
    this.unloadBlock();
    for (const p of blockParams(this.spec, i)) {
      const t = toTf(await this.reader.read(this.nameOf(p.name)));
      const want = this.model.storedShape(p);
      if (t.shape.join(',') !== want.join(',')) {
        t.dispose();
        this.unloadBlock();
        fail('model', `tensor ${p.name} has shape [${t.shape}], the config.json implies [${want}]`);
      }
      this.model.setParam(p.name, t);
      this.loaded = i;
    }
  }

  /** Free the loaded block's weights. */
  unloadBlock(): void {
    if (this.loaded < 0) return;
    for (const p of blockParams(this.spec, this.loaded)) if (this.model.params.has(p.name)) this.model.params.remove(p.name);
    this.loaded = -1;
  }

  /** Block i (loaded) on x (B, T, C); its intermediates are freed. */
  block(i: number, x: tf.Tensor3D): tf.Tensor3D {
    if (this.loaded !== i) fail('internal', `block ${i} is not loaded`);
    return tf.tidy(() => this.model.block(i, x));
  }

  /**
   * Summed next-token cross-entropy (nats) of each window of residual streams x (B, T, C) after
   * the last block against targets y (B·T), B sums: final norm, then the head one vocabulary chunk at a time (widened from
   * its stored rows, used for every position, freed) with a running logsumexp per position; each
   * target's logit from its own head row.
   */
  async windowLossSums(x: tf.Tensor3D, y: Int32Array): Promise<number[]> {
    const [B, T, C] = x.shape;
    const N = B * T;
    const V = this.spec.vocab;
    const cap = this.spec.logitSoftcap;
    const capped = (t: tf.Tensor) => (cap === null ? t : tf.mul(tf.tanh(tf.div(t, cap)), cap));
    const h = tf.tidy(() => tf.reshape(this.model.finalNorm(x), [N, C]) as tf.Tensor2D);
    // Positions per product so that a chunk's logits stay within the budget.
    const step = Math.max(1, Math.floor(LOGITS_BUDGET / HEAD_CHUNK_ROWS));
    let M: tf.Tensor1D | null = null; // running max logit per position
    let S: tf.Tensor1D | null = null; // running Σ exp(logit − M)
    for (let r0 = 0; r0 < V; r0 += HEAD_CHUNK_ROWS) {
      const r1 = Math.min(V, r0 + HEAD_CHUNK_ROWS);
      const W = tf.tensor2d(this.headRows.range(r0, r1), [r1 - r0, C]);
      const next = tf.tidy(() => {
        const ms: tf.Tensor[] = [];
        const ss: tf.Tensor[] = [];
        for (let n0 = 0; n0 < N; n0 += step) {
          const logits = capped(tf.matMul(tf.slice(h, [n0, 0], [Math.min(N, n0 + step) - n0, C]), W, false, true)); // (n, C) @ (C, Vc)
          const m = tf.max(logits, 1);
          ms.push(m);
          ss.push(tf.sum(tf.exp(tf.sub(logits, tf.expandDims(m, 1))), 1));
        }
        const m = tf.concat(ms) as tf.Tensor1D;
        const s = tf.concat(ss) as tf.Tensor1D;
        if (M === null || S === null) return { M: m, S: s };
        const M2 = tf.maximum(M, m) as tf.Tensor1D;
        return { M: M2, S: tf.add(tf.mul(S, tf.exp(tf.sub(M, M2))), tf.mul(s, tf.exp(tf.sub(m, M2)))) as tf.Tensor1D };
      });
      W.dispose();
      tf.dispose([M, S].filter((t): t is tf.Tensor1D => t !== null));
      ({ M, S } = next);
    }
    const targetRows = tf.tensor2d(this.headRows.gather(y), [N, C]);
    const sums = tf.tidy(() => tf.sum(tf.reshape(tf.sub(tf.add(M!, tf.log(S!)), capped(tf.sum(tf.mul(h, targetRows), 1))), [B, T]), 1));
    tf.dispose([h, targetRows, M!, S!]);
    const values = Array.from(await sums.data());
    sums.dispose();
    return values;
  }

  dispose(): void {
    this.unloadBlock();
    this.model.dispose();
  }
}
