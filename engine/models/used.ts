/** The check that every weight of a checkpoint is used by the model its config.json describes. */
import { fail } from '../core/errors.js';

/** Checkpoint entries that hold no parameter: GPT-2's and GPT-NeoX's cached masks, cached rotary frequencies, a tied head saved anyway. */
const NON_PARAMETERS = /(^|\.)(attn|attention)\.(bias|masked_bias)$|rotary_emb\.inv_freq$|^lm_head\.weight$/;

/**
 * Fail when the checkpoint holds a weight the model of its config.json does not use: a Qwen2 (q/k/v
 * biases) relabelled llama, or a config whose flags (attention_bias, mlp_bias, tie_word_embeddings)
 * do not match its weights, would otherwise be evaluated without them, silently wrong.
 */
export function checkAllUsed(names: readonly string[], used: ReadonlySet<string>, dir: string, family: string): void {
  const unused = names.filter((n) => !used.has(n) && !NON_PARAMETERS.test(n));
  if (unused.length > 0)
    fail(
      'model',
      `${dir} holds ${unused.length} weight${unused.length > 1 ? 's' : ''} a ${family} of its config.json does not use (${unused.slice(0, 3).join(', ')}${unused.length > 3 ? ', …' : ''}): do model_type and its flags match the weights?`,
    );
}
