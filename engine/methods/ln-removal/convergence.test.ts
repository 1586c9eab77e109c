/**
 * The convergence guard: it fires on a base with 20 steps of pretraining and not on one trained
 * to convergence on a small Markov-chain corpus (conditional entropy ≈ 0.80 nats, unigram ≈ 2.08).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { evalWindows, TokenBatcher } from '../../data/batches.js';
import { Rng } from '../../data/rng.js';
import { GPT2, gpt2ConfigFromJson } from '../../models/gpt2.js';
import { AdamW } from '../../nn/optim.js';
import { disposeStep, lmTrainStep } from '../../train/lm-step.js';
import { convergenceWarnings, lnfInputStd, stillImprovingWarning, TEMPERATURES, unigramCE, windowCE } from './convergence.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** 8 of 50 token ids; next = (3·prev + 1) mod 8 with probability 0.8, else uniform over the 8. */
function markovTokens(n: number): Int32Array {
  const rng = new Rng(5);
  const out = new Int32Array(n);
  for (let i = 1; i < n; i++) out[i] = rng.next() < 0.8 ? (3 * out[i - 1] + 1) % 8 : rng.int(8);
  return out;
}

async function base(steps: number) {
  const tokens = markovTokens(6000);
  const train = tokens.subarray(0, 5000);
  const val = evalWindows(tokens.subarray(5000), 16, 32);
  const model = new GPT2(gpt2ConfigFromJson({ vocab_size: 50, n_positions: 16, n_embd: 16, n_layer: 1, n_head: 2 }), 3);
  const opt = new AdamW(model.params);
  const batcher = new TokenBatcher(train, 16, 16, 1);
  for (let s = 0; s < steps; s++) disposeStep(lmTrainStep(model, opt, { ...batcher.next(), batch: 16, seq: 16 }, steps > 20 ? 1e-2 : 1e-3));
  const ev = await windowCE(model, val, 8);
  const c = { base_ce: ev.ce, unigram_ce: unigramCE(train, val, 50), base_temperature: ev.temperature, base_ce_calibrated: ev.calibratedCE };
  return { model, val, ev, c };
}

describe('LN removal convergence guard', () => {
  it('fires on a 20-step base: CE above the unigram model', async () => {
    const { model, ev, c } = await base(20);
    expect(c.unigram_ce).toBeGreaterThan(1.9);
    expect(c.unigram_ce).toBeLessThan(2.2);
    expect(c.base_ce).toBeGreaterThan(c.unigram_ce);
    expect(convergenceWarnings(c).join('\n')).toMatch(/not converged: its val CE .* is not below a unigram model's/);
    expect(ev.perWindow.length).toBe(32);
    expect(ev.calibratedCE).toBeLessThanOrEqual(ev.ce);
    model.dispose();
  });

  it('stays quiet on a converged base, whose per-window CEs average to its CE', async () => {
    const { model, val, ev, c } = await base(400);
    expect(c.base_ce).toBeLessThan(1.0);
    expect(convergenceWarnings(c)).toEqual([]);
    expect(ev.perWindow.reduce((s, v) => s + v, 0) / ev.perWindow.length).toBeCloseTo(ev.ce, 12);
    // The std ln_f divides by is positive and finite.
    const std = await lnfInputStd(model, val, 8);
    expect(std).toBeGreaterThan(0);
    model.dispose();
  });

  it('flags logits far from calibrated', () => {
    const w = convergenceWarnings({ base_ce: 1, unigram_ce: 2, base_temperature: 0.5, base_ce_calibrated: 0.9 });
    expect(w).toEqual([expect.stringMatching(/CE-optimal temperature 0.5 \(CE 1 → 0.9\)/)]);
    expect(TEMPERATURES[12]).toBe(1);
  });
});

describe('the still-improving guard of the vanilla arm', () => {
  it('fires when the val CE fell more than 0.01 nats over the last quarter, and not on a flat end', () => {
    // steps 0..100 by 25: the evaluation nearest 3/4 is step 75
    expect(stillImprovingWarning([0, 25, 50, 75, 100], [5, 4, 3.5, 3.3, 3.25])).toMatch(/fell 0.05 nats from step 75 to 100/);
    expect(stillImprovingWarning([0, 25, 50, 75, 100], [5, 4, 3.5, 3.255, 3.25])).toBeNull();
    expect(stillImprovingWarning([100], [3])).toBeNull();
  });
});
