/**
 * What the compare view says of the chosen runs' key results: each value with its own 95% interval,
 * and, for two runs whose key results measure the same thing, whether their difference can be read
 * from those intervals. Each interval is its run's own (over that run's evaluation windows, images
 * or samples), and run summaries keep no per-unit values two runs share, so no paired test across
 * runs is made: overlapping intervals leave the difference unread; intervals that do not overlap
 * show a difference larger than either run's own noise (a conservative reading).
 */
import { asKeyResult, keyResultText, type KeyResult } from './intervals';

/** A chosen run as the compare view names it, with its summary's key result (any shape). */
export interface ComparedRun {
  id: string;
  /** The name the view shows (its charts' series label). */
  label: string;
  method: string;
  status: string;
  keyResult: unknown;
}

/** What the key-results table and the pair readings say is shown. */
export const WHAT_IS_SHOWN =
  "Each value's 95% interval is its own run's (how it was computed is in the interval column). The runs share no paired data here, so no test of the difference between two runs is made; two runs' intervals are only checked for overlap.";

/** The key-results table: one row per run, its value with its interval, its own verdict (a comparison inside that run) and how the interval was computed. */
export function keyResultRows(runs: ComparedRun[]): Record<string, unknown>[] {
  return runs.map((r) => {
    const kr = asKeyResult(r.keyResult);
    const t = kr ? keyResultText(kr) : null;
    return {
      run: r.id,
      name: r.label,
      method: r.method,
      status: r.status,
      key_result: t?.label ?? '',
      value: t?.value ?? '—',
      verdict: t?.verdict ?? '',
      interval: kr?.ci95 ? (kr.interval ?? 'method not stated') : 'none in the summary',
    };
  });
}

/** Whether two runs' key results can be read against each other, and the sentence that says so. */
export interface PairReading {
  a: string;
  b: string;
  /** `overlap`: the difference cannot be read; `apart`: the intervals do not overlap; `no-interval` / `different`: nothing to read. */
  reading: 'overlap' | 'apart' | 'no-interval' | 'different';
  text: string;
}

const sameQuantity = (a: KeyResult, b: KeyResult) => a.label === b.label && a.unit === b.unit;

/** Every pair of chosen runs that both have a key result, read from their own intervals only. */
export function pairReadings(runs: ComparedRun[]): PairReading[] {
  const withKey = runs.flatMap((r) => {
    const kr = asKeyResult(r.keyResult);
    return kr ? [{ label: r.label, kr, text: keyResultText(kr).value }] : [];
  });
  const out: PairReading[] = [];
  for (let i = 0; i < withKey.length; i++)
    for (let j = i + 1; j < withKey.length; j++) {
      const a = withKey[i];
      const b = withKey[j];
      const pair = { a: a.label, b: b.label };
      if (!sameQuantity(a.kr, b.kr)) {
        out.push({
          ...pair,
          reading: 'different',
          text: `${a.label} and ${b.label}: their key results measure different things (${a.kr.label} vs ${b.kr.label}), so they are not compared.`,
        });
        continue;
      }
      const shown = `${a.label} ${a.text} and ${b.label} ${b.text}`;
      if (!a.kr.ci95 || !b.kr.ci95) {
        const lacking = [a, b].filter((x) => !x.kr.ci95).map((x) => x.label);
        out.push({
          ...pair,
          reading: 'no-interval',
          text: `${shown}: the difference cannot be read: ${lacking.join(' and ')} has no interval in its summary.`,
        });
        continue;
      }
      const overlap = a.kr.ci95[0] <= b.kr.ci95[1] && b.kr.ci95[0] <= a.kr.ci95[1];
      out.push(
        overlap
          ? { ...pair, reading: 'overlap', text: `${shown}: their 95% intervals overlap, so the difference between these runs cannot be read from them.` }
          : {
              ...pair,
              reading: 'apart',
              text: `${shown}: their 95% intervals do not overlap, so the runs differ by more than either run's own noise (a conservative reading of two separate intervals, not a paired test).`,
            },
      );
    }
  return out;
}
