/**
 * Sizes of the automatic depth diagnostics that run at the end of every lm-pretrain run: small,
 * so they take seconds at default sizes. lns-study runs its children with its own sizes.
 */
import type { DiagnosticsOptions } from './diagnostics.js';

export const AUTO_DIAGNOSTICS: DiagnosticsOptions = { sequences: 8, pruningWindows: 8, batch: 8 };

let override: Partial<DiagnosticsOptions> | null = null;

/** The sizes in force now. */
export function autoDiagnosticsOptions(): DiagnosticsOptions {
  return { ...AUTO_DIAGNOSTICS, ...(override ?? {}) };
}

/**
 * Run `fn` with other sizes for the automatic end-of-run diagnostics (lns-study's child runs run
 * one after another in this process, so a module-level setting is enough).
 */
export async function withAutoDiagnostics<T>(opts: Partial<DiagnosticsOptions>, fn: () => Promise<T>): Promise<T> {
  const before = override;
  override = opts;
  try {
    return await fn();
  } finally {
    override = before;
  }
}
