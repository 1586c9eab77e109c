/**
 * Sizes of the automatic depth diagnostics that run at the end of every lm-pretrain run: its
 * `diagnostics` config, small by default so they take seconds (lns-study gives its children its
 * own sizes that way, wherever the children execute).
 */
import type { LMPretrainConfig } from '../../train/lm-pretrain.js';
import type { DiagnosticsOptions } from './diagnostics.js';

/** The diagnostics sizes of one lm-pretrain run (8 sequences per forward pass). */
export function autoDiagnosticsOptions(cfg: Pick<LMPretrainConfig, 'diagnostics'>): DiagnosticsOptions {
  const d = cfg.diagnostics;
  return { sequences: d.sequences, pruningWindows: d.pruning_windows, batch: 8, variance: d.variance, ...(d.max_n !== undefined ? { maxN: d.max_n } : {}) };
}
