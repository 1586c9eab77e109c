/** LCT's progress line says no loss before a step has logged one (it said `loss NaN`). */
import { describe, expect, it } from 'vitest';
import { lctProgressMessage } from './lct.js';

describe('lct progress', () => {
  it('shows N alone until the first logged loss, then the loss', () => {
    expect(lctProgressMessage(12, NaN)).toBe('N 12');
    expect(lctProgressMessage(12, 0.0123)).toBe('N 12 loss 1.230e-2');
  });
});
