/**
 * Why a model computes a non-finite loss, in words a user can act on: the first weight tensor that
 * holds NaN or an infinity, or, when every weight is finite, an overflow in the forward pass.
 */
import type { SavableModel } from './index.js';

/** One phrase naming the cause (reads every weight once, asynchronously). */
export async function nonFiniteCause(model: SavableModel): Promise<string> {
  const tensors = model.checkpointTensors();
  try {
    for (const [name, t] of tensors) {
      const values = await t.data();
      for (let i = 0; i < values.length; i++)
        if (!Number.isFinite(values[i])) return `weight ${name} holds ${Number.isNaN(values[i]) ? 'NaN' : 'an infinite value'} (at index ${i})`;
    }
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return 'every weight is finite, so the forward pass overflowed or divided by zero (check the norm epsilon and the scale of the weights)';
}
