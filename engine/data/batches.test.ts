import { describe, it, expect } from 'vitest';
import { NormLabError } from '../core/errors.js';
import { evalWindows, splitTrainVal, TokenBatcher } from './batches.js';

const ramp = (n: number): Uint16Array => Uint16Array.from({ length: n }, (_, i) => i);

describe('splitTrainVal', () => {
  it('keeps the last fraction as validation, contiguous and as views', () => {
    const t = ramp(100);
    const { train, val } = splitTrainVal(t, 0.1, 8);
    expect(train.length).toBe(90);
    expect(val.length).toBe(10);
    expect(train[89]).toBe(89);
    expect(val[0]).toBe(90);
    expect(val).toBeInstanceOf(Uint16Array);
    expect(val.buffer).toBe(t.buffer);
    expect(splitTrainVal([1, 2, 3, 4, 5, 6], 0.5, 2).val).toEqual([4, 5, 6]);
  });

  it('fails when a part is shorter than seq + 1, or the fraction is out of range', () => {
    expect(() => splitTrainVal(ramp(100), 0.05, 8)).toThrow(/shorter than seq \+ 1 = 9/);
    expect(() => splitTrainVal(ramp(100), 0.95, 8)).toThrow(NormLabError);
    expect(() => splitTrainVal(ramp(100), 0, 8)).toThrow(/valFraction/);
    expect(() => splitTrainVal(ramp(100), 1, 8)).toThrow(/valFraction/);
  });
});

describe('TokenBatcher', () => {
  it('gives (batch, seq) windows with y = x shifted by one, inside the stream', () => {
    const b = new TokenBatcher(ramp(50), 4, 8, 1);
    for (let k = 0; k < 20; k++) {
      const { x, y } = b.next();
      expect(x.length).toBe(32);
      for (let r = 0; r < 4; r++) {
        for (let t = 0; t < 8; t++) {
          expect(y[r * 8 + t]).toBe(x[r * 8 + t] + 1);
          if (t > 0) expect(x[r * 8 + t]).toBe(x[r * 8 + t - 1] + 1);
        }
        expect(y[r * 8 + 7]).toBeLessThanOrEqual(49);
      }
    }
  });

  it('reaches both ends of the stream', () => {
    const b = new TokenBatcher(ramp(12), 8, 4, 2);
    const starts = new Set<number>();
    for (let k = 0; k < 50; k++) {
      const { x } = b.next();
      for (let r = 0; r < 8; r++) starts.add(x[r * 4]);
    }
    expect([...starts].sort((a, c) => a - c)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('is deterministic per seed', () => {
    const a = new TokenBatcher(ramp(1000), 2, 16, 5);
    const b = new TokenBatcher(ramp(1000), 2, 16, 5);
    const c = new TokenBatcher(ramp(1000), 2, 16, 6);
    const xa = a.next().x;
    expect(b.next().x).toEqual(xa);
    expect(c.next().x).not.toEqual(xa);
  });

  it('continues the same sequence after state()/restore(), through JSON', () => {
    const a = new TokenBatcher(ramp(1000), 3, 16, 11);
    for (let k = 0; k < 5; k++) a.next();
    const saved = JSON.parse(JSON.stringify(a.state()));
    expect(saved.step).toBe(5);
    const expected = [a.next(), a.next()];
    const resumed = new TokenBatcher(ramp(1000), 3, 16, 11);
    resumed.restore(saved);
    expect([resumed.next(), resumed.next()]).toEqual(expected);
    expect(resumed.state().step).toBe(7);
  });

  it('rejects streams shorter than seq + 1 and bad sizes', () => {
    expect(() => new TokenBatcher(ramp(8), 1, 8, 0)).toThrow(/need at least 9/);
    expect(() => new TokenBatcher(ramp(100), 0, 8, 0)).toThrow(/batch/);
  });
});

describe('evalWindows', () => {
  it('covers the stream from the start with consecutive windows', () => {
    const w = evalWindows(ramp(33), 8, 100);
    expect(w.count).toBe(4);
    expect(Array.from(w.x)).toEqual(Array.from({ length: 32 }, (_, i) => i));
    expect(Array.from(w.y)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
  });

  it('stops at maxWindows and needs at least one window', () => {
    expect(evalWindows(ramp(1000), 8, 3).count).toBe(3);
    expect(evalWindows(ramp(32), 8, 100).count).toBe(3);
    expect(() => evalWindows(ramp(8), 8, 1)).toThrow(NormLabError);
  });
});

describe('uint32 token streams', () => {
  it('keep ids beyond 65535 (up to 151,935) through the split, the batcher and the evaluation windows', () => {
    const t = Uint32Array.from({ length: 200 }, (_, i) => 151935 - i * 500);
    const { train, val } = splitTrainVal(t, 0.25, 8);
    expect(val).toBeInstanceOf(Uint32Array);
    expect(val[0]).toBe(151935 - 150 * 500);
    const w = evalWindows(val, 8, 2);
    expect(Array.from(w.x.subarray(0, 3))).toEqual([151935 - 150 * 500, 151935 - 151 * 500, 151935 - 152 * 500]);
    expect(w.y[0]).toBe(w.x[1]);
    const { x, y } = new TokenBatcher(train, 4, 8, 1).next();
    for (let i = 0; i < x.length; i++) {
      expect(x[i]).toBeGreaterThan(65535);
      expect((151935 - x[i]) % 500).toBe(0);
      if (i % 8 < 7) expect(y[i]).toBe(x[i + 1]);
    }
  });
});
