/**
 * Sizes of the automatic depth diagnostics that run at the end of every lm-pretrain run: small,
 * so they take seconds at default sizes. A run's `diagnostics` config overrides them (lns-study
 * gives its children its own sizes that way, wherever the children execute).
 */
import type { LMPretrainConfig } from '../../train/lm-pretrain.js';
import type { DiagnosticsOptions } from './diagnostics.js';

export const AUTO_DIAGNOSTICS: DiagnosticsOptions = { sequences: 8, pruningWindows: 8, batch: 8 };

/** The diagnostics sizes of one lm-pretrain run. */
export function autoDiagnosticsOptions(cfg: Pick<LMPretrainConfig, 'diagnostics'>): DiagnosticsOptions {
  const d = cfg.diagnostics;
  return d
    ? { ...AUTO_DIAGNOSTICS, sequences: d.sequences, pruningWindows: d.pruning_windows, ...(d.max_n !== undefined ? { maxN: d.max_n } : {}) }
    : AUTO_DIAGNOSTICS;
}
