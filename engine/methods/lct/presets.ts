/**
 * The official LCT training recipe's optimizer as a preset (docs/methods.md, "Latent consistency
 * training"), for `lct` and `lct-study`.
 *
 * Source: quandao10/LCT `train_cm_latent.py`: `torch.optim.RAdam(model.parameters(), lr=args.lr,
 * weight_decay=1e-4, eps=1e-4)` (torch's coupled L2 decay on every parameter), the
 * `clip_grad_norm_` call commented out (no clipping), `update_ema(ema, model)` with its default
 * decay 0.9999 every step (no EMA warmup), `adjust_learning_rate` commented out (constant lr, no
 * warmup); `scripts/train_lct.sh`: `--lr 1e-4`, `--global-batch-size 128`, `--start-scales 10`,
 * `--end-scales 640`.
 */
import type { Preset } from '../../jobs/presets.js';

const train = {
  optimizer: 'radam',
  lr: 1e-4,
  weight_decay: 1e-4,
  eps: 1e-4,
  clip: 0,
  ema: 0.9999,
  ema_warmup: false,
  warmup: 0,
  schedule: 'constant',
  batch: 128,
  s0: 10,
  s1: 640,
};

const source = 'quandao10/LCT train_cm_latent.py (RAdam lr 1e-4, weight_decay 1e-4, eps 1e-4; no clipping; EMA 0.9999) + scripts/train_lct.sh';
const description =
  'the official optimizer: RAdam lr 1e-4, weight decay 1e-4 (L2), eps 1e-4, no clipping, constant lr, EMA 0.9999 without warmup, batch 128, curriculum 10→640. EMA 0.9999 averages over ~10k steps: train far longer than the 1,200-step default or the EMA samples stay near the initial weights';

export const lctPresets: Preset[] = [
  { name: 'lct-official-optimizer', method: 'lct', description, source, config: { train } },
  { name: 'lct-official-optimizer', method: 'lct-study', description, source, config: { train } },
];
