/**
 * Kernels that need not copy: Identity (the engine clones every tensor it saves for the backward
 * pass, so the stock copying Identity ran ~100 heap copies per training step) and SplitV (whose
 * stock version slices with the whole-input-copying stock Slice).
 *
 * Identity shares the input's data and bumps its reference count, exactly as the stock Reshape
 * does: tensors are immutable and the backend frees data only when its last reference goes.
 */
import * as tf from '@tensorflow/tfjs-core';

type KernelArgs = Parameters<tf.KernelFunc>[0];

export function makeIdentity(stock: tf.KernelFunc | undefined): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string') {
      if (!stock) throw new Error('Identity of strings is not supported on wasm');
      return stock(args);
    }
    (args.backend as unknown as { incRef(d: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as tf.KernelFunc;
}

export function makeSplitV(slice: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const size = [...x.shape];
      size[ax] = s;
      const out = slice({ inputs: { x }, backend: args.backend, attrs: { begin: [...begin], size } } as KernelArgs);
      begin[ax] += s;
      return out as tf.TensorInfo;
    });
  }) as unknown as tf.KernelFunc;
}
