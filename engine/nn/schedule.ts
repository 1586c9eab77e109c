/**
 * Learning-rate schedules. `cosine`: linear warmup to `lr`, then cosine decay to `minLr`
 * (the LNS paper: cosine to 0.1x with 10% warmup; the LN-removal paper: a cosine with a floor).
 * `constant`: warmup then flat.
 */
export interface ScheduleConfig {
  kind: 'cosine' | 'constant';
  lr: number;
  warmup: number;
  minLr: number;
  total: number;
}

/** Learning rate for 0-based step `step`. */
export function learningRate(s: ScheduleConfig, step: number): number {
  if (s.warmup > 0 && step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  if (s.kind === 'constant') return s.lr;
  const span = Math.max(1, s.total - s.warmup);
  const progress = Math.min(1, (step - s.warmup) / span);
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}
