/**
 * Names that command-line options offer as choices, in a module that imports nothing, so that `normlab --help` can list them
 * without loading the data, model or TensorFlow.js modules that define their meaning (those re-export them from here).
 */

/** Element type of a token file: flat little-endian uint16 (nanoGPT) or uint32 ids. */
export type TokenDtype = 'uint16' | 'uint32';
export const TOKEN_DTYPES: readonly TokenDtype[] = ['uint16', 'uint32'];

export type TokenizerName = 'byte' | 'gpt2';
export const TOKENIZER_NAMES: readonly TokenizerName[] = ['byte', 'gpt2'];

/** How to evaluate a model folder: in memory, block by block, or whichever suits its size. */
export const STREAMING_MODES = ['auto', 'always', 'never'] as const;
export type StreamingMode = (typeof STREAMING_MODES)[number];
