/** Checks and clean-up of the numbers a plot is given: one-line `data` errors, non-finite dropped. */
import { fail } from '../core/errors.js';

/** Fail unless `title` is a string (it names the plot in every other error). */
export function checkTitle(title: unknown, kind: string): string {
  if (typeof title !== 'string') fail('data', `${kind}: title must be a string`);
  return title;
}

/** Fail when an array-like of numbers is missing or empty. */
export function checkNonEmpty(what: string, values: ArrayLike<number> | undefined | null): asserts values is ArrayLike<number> {
  if (values == null || values.length === 0) fail('data', `${what} is empty: nothing to plot`);
}

/** Format a number compactly for labels: 3 significant digits, exponent when tiny or huge. */
export function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(3)));
  return v.toExponential(2);
}

/**
 * Thin a long (x, y) series to about `maxPoints` points, keeping each bucket's minimum and
 * maximum so spikes survive (loss curves with 10⁵ steps stay light SVGs).
 */
export function decimate(xs: number[], ys: number[], maxPoints: number): { x: number[]; y: number[] } {
  const n = xs.length;
  if (n <= maxPoints) return { x: xs, y: ys };
  const buckets = Math.max(1, Math.floor(maxPoints / 2));
  const size = n / buckets;
  const ox: number[] = [];
  const oy: number[] = [];
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * size);
    const hi = Math.min(n, Math.floor((b + 1) * size));
    if (hi <= lo) continue;
    let iMin = lo;
    let iMax = lo;
    for (let i = lo + 1; i < hi; i++) {
      if (ys[i] < ys[iMin]) iMin = i;
      if (ys[i] > ys[iMax]) iMax = i;
    }
    const first = Math.min(iMin, iMax);
    const second = Math.max(iMin, iMax);
    ox.push(xs[first]);
    oy.push(ys[first]);
    if (second !== first) {
      ox.push(xs[second]);
      oy.push(ys[second]);
    }
  }
  return { x: ox, y: oy };
}

/** True when every value is an integer (axis ticks then step by at least 1). */
export function allIntegers(values: Iterable<number>): boolean {
  for (const v of values) if (!Number.isInteger(v)) return false;
  return true;
}

/**
 * A log-scale domain that covers [min, max] (both > 0) with ends on 1–9 × 10^k, so the axis has
 * labelled ticks at both ends without stretching to whole decades.
 */
export function logDomain(min: number, max: number): [number, number] {
  const down = (v: number) => {
    const p = 10 ** Math.floor(Math.log10(v));
    return Math.floor(v / p + 1e-9) * p;
  };
  const up = (v: number) => {
    const p = 10 ** Math.floor(Math.log10(v));
    return Math.ceil(v / p - 1e-9) * p;
  };
  let lo = down(min);
  let hi = up(max);
  if (!(hi > lo)) {
    lo = min / 2;
    hi = max * 2;
  }
  return [Number(lo.toPrecision(6)), Number(hi.toPrecision(6))];
}

/** [min, max] of the finite values (undefined when there are none). */
export function extent(values: Iterable<number>): [number, number] | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : undefined;
}
