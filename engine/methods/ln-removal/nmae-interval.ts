/**
 * The 95% interval of a DLA-vs-DE NMAE: a percentile bootstrap over prompts. Prompts are the
 * independent units (the tokens of one prompt share its residual stream, and every head is scored
 * on the same tokens), so each replicate draws prompts with replacement and recomputes the NMAE as
 * the ratio of their summed |DLA − DE| to their summed |DE|, as the point estimate is computed.
 */
import { bootstrapSE, percentileInterval, type Interval } from '../../stats/stats.js';
import type { PromptSums } from './dla.js';

/** Bootstrap replicates per NMAE interval. */
export const NMAE_RESAMPLES = 2000;

export interface NmaeInterval {
  /** NMAE (%) over every prompt. */
  nmae_pct: number;
  /** Its 95% interval (%), null with fewer than 2 prompts. */
  ci95: Interval | null;
  prompts: number;
}

/** NMAE (%) = Σ absErr / Σ absDe × 100 over the prompts `idx` picks (0 when Σ absDe is 0). */
function nmaeOf(s: PromptSums, idx: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < idx.length; i++) {
    num += s.absErr[idx[i]];
    den += s.absDe[idx[i]];
  }
  return den > 0 ? (num / den) * 100 : 0;
}

/** An NMAE with its percentile bootstrap interval over prompts (`resamples` replicates, seeded). */
export function nmaeInterval(s: PromptSums, seed: number, resamples = NMAE_RESAMPLES): NmaeInterval {
  const n = s.absErr.length;
  const all = Int32Array.from({ length: n }, (_, i) => i);
  const ci95 = n >= 2 ? percentileInterval(bootstrapSE([n], resamples, seed, ([idx]) => nmaeOf(s, idx)).replicates) : null;
  return { nmae_pct: nmaeOf(s, all), ci95, prompts: n };
}

/** What an NMAE interval is, for the summary's `interval` texts. */
export function nmaeIntervalText(prompts: number, seed: number, resamples = NMAE_RESAMPLES): string {
  return `percentile bootstrap over ${prompts} prompts (${resamples} resamples, seed ${seed})`;
}
