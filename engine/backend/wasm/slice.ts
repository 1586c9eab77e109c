/**
 * Slice for the wasm backend that reads only the rows it keeps. The stock kernel first copies
 * the whole input out of the heap (`readSync`), so taking q, k and v out of a fused qkv tensor
 * copied it three times; this one copies each contiguous run straight from heap to heap.
 */
import * as tf from '@tensorflow/tfjs-core';
import { internals } from './heap.js';

export function makeSlice(stock: tf.KernelFunc | undefined): tf.KernelFunc {
  return ((args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string') {
      if (!stock) throw new Error('Slice of strings is not supported on wasm');
      return stock(args as unknown as Parameters<tf.KernelFunc>[0]);
    }
    const be = internals(args.backend);
    const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
    const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    const out = be.makeOutput(s, x.dtype);
    const total = tf.util.sizeFromShape(s);
    if (total === 0) return out;
    const xv = be.typedArrayFromHeap(x);
    const ov = be.typedArrayFromHeap(out);
    const rank = x.shape.length;
    if (rank === 0) {
      ov[0] = xv[0];
      return out;
    }
    const strides = tf.util.computeStrides(x.shape); // rank-1 entries
    const stride = (d: number) => (d < rank - 1 ? strides[d] : 1);
    // Merge trailing axes that are taken whole into one contiguous run.
    let inner = rank - 1;
    let run = s[rank - 1];
    while (inner > 0 && s[inner] === x.shape[inner] && b[inner] === 0) {
      inner--;
      run *= s[inner];
    }
    // Axes [0, inner) are iterated; axis `inner` starts the run at b[inner].
    let base = 0;
    for (let d = 0; d < rank; d++) base += b[d] * stride(d);
    const outer = total / run;
    if (outer === 1) {
      ov.set(xv.subarray(base, base + run));
      return out;
    }
    const coord = new Array<number>(inner).fill(0);
    let src = base;
    for (let o = 0, dst = 0; o < outer; o++, dst += run) {
      ov.set(xv.subarray(src, src + run), dst);
      // advance the odometer over axes inner-1 .. 0
      for (let d = inner - 1; d >= 0; d--) {
        coord[d]++;
        src += stride(d);
        if (coord[d] < s[d]) break;
        src -= coord[d] * stride(d);
        coord[d] = 0;
      }
    }
    return out;
  }) as unknown as tf.KernelFunc;
}
