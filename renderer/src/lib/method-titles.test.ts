/** A training stage of a method's study is titled as what it is, with its family's figures. */
import { describe, expect, it } from 'vitest';
import { methodView } from './results';

describe('result page titles', () => {
  it('vit-train is a ViT training, not a PTQ study; the studies keep their titles', () => {
    expect(methodView('vit-train')).toEqual({ family: 'ptq', title: 'ViT training (the model a PTQ study quantizes)' });
    expect(methodView('ptq-study')?.title).toBe('Post-training quantization (DopQ-ViT)');
    expect(methodView('autoencoder-train')?.family).toBe('lct');
    expect(methodView('autoencoder-train')?.title).not.toBe(methodView('lct-study')?.title);
  });
});
