/** `normlab eval-vit`: top-1 accuracy of a ViT model folder on MNIST's test split or an image folder. */
import { fail } from '../../core/errors.js';
import { top1 } from './ptq.js';
import { checkImagesFit, loadImageSource, loadViT } from './vit-io.js';

export async function evalViT(opts: { model: string; data?: string; count?: number }): Promise<{ top1: number; images: number }> {
  const model = await loadViT(opts.model);
  try {
    const set = await loadImageSource(opts.data ?? 'mnist', 'test', opts.count, 0);
    checkImagesFit(model, set, opts.data ?? 'mnist');
    if (set.labels.some((l) => l < 0)) fail('data', `${opts.data}: images have no labels (use ${opts.data}/<class>/*.png)`);
    return { top1: await top1(model, set), images: set.n };
  } finally {
    model.dispose();
  }
}
