/**
 * GatherV2 along axis 0 (embedding lookups) for the wasm backend: one heap-to-heap row copy per
 * index. The stock kernel walks every output element through generic index arithmetic and took
 * ~9 ms for the bench LM's (2048 x 128) lookup; this takes well under 1 ms. Other axes, batch
 * dims and dtypes go to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { internals } from './heap.js';

export function makeGather(stock: tf.KernelFunc | undefined): tf.KernelFunc {
  return ((args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
    const rowsAxis = x.shape.length > 0 && tf.util.parseAxisParam(axis, x.shape)[0] === 0;
    if (!rowsAxis || batchDims !== 0 || x.dtype === 'string' || x.dtype === 'bool' || indices.dtype !== 'int32') {
      if (!stock) throw new Error('GatherV2: this case is not supported on wasm');
      return stock(args as unknown as Parameters<tf.KernelFunc>[0]);
    }
    const be = internals(args.backend);
    const rows = x.shape[0];
    const row = tf.util.sizeFromShape(x.shape.slice(1));
    const out = be.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    const ids = be.typedArrayFromHeap(indices) as Int32Array;
    const xv = be.typedArrayFromHeap(x);
    const ov = be.typedArrayFromHeap(out);
    for (let i = 0; i < ids.length; i++) {
      const r = ids[i];
      if (!(r >= 0 && r < rows)) throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`);
      ov.set(xv.subarray(r * row, (r + 1) * row), i * row);
    }
    return out;
  }) as unknown as tf.KernelFunc;
}
