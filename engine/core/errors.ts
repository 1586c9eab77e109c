/**
 * The one error type of NormLab. Every failure a user can cause (bad config, bad file, bad
 * message, missing backend) is a NormLabError with a code and a one-line message that says what
 * is wrong and, where it helps, what was expected. The CLI prints `normlab: <message>` and exits
 * non-zero; the protocol sends `{code, message}`; the renderer shows the message by its field.
 */
export type ErrorCode =
  | 'config' // a config or option does not fit the schema
  | 'io' // a file is missing, truncated or inconsistent
  | 'data' // a data set or token file does not fit
  | 'model' // a checkpoint does not fit the model config
  | 'shape' // a tensor has the wrong shape
  | 'backend' // a compute backend cannot load, or failed (a wasm heap that ran out)
  | 'protocol' // a message does not fit the protocol
  | 'not-found' // a run, project or job does not exist
  | 'access' // a path the workbench was not granted (outside the project and the allowed folders)
  | 'state' // an action that does not fit the current state (resume a finished run)
  | 'cancelled' // a job was cancelled
  | 'internal';

export class NormLabError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'NormLabError';
    this.code = code;
  }
}

/** Throw a NormLabError: `fail('io', 'model.safetensors is truncated')`. */
export function fail(code: ErrorCode, message: string): never {
  throw new NormLabError(code, message);
}

/**
 * What a wasm abort (`RuntimeError: Aborted()`) says: the tfjs wasm module, built without
 * assertions, aborts with no reason when its heap cannot grow past 4 GiB, and runs nothing after
 * (every later call fails, e.g. `memory access out of bounds`).
 */
export const WASM_ABORT =
  'the wasm backend aborted: its heap (4 GiB at most) most likely ran out of memory; evaluate a large model block by block (streaming: always) or with a smaller batch or seq, in a new process (this one can run nothing more on wasm)';

/** Any thrown value as a NormLabError (a wasm abort becomes `backend`, other unknown errors `internal` with their message). */
export function asNormLabError(err: unknown): NormLabError {
  if (err instanceof NormLabError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof WebAssembly.RuntimeError && message.startsWith('Aborted(')) return new NormLabError('backend', WASM_ABORT);
  return new NormLabError('internal', message.split('\n')[0] ?? 'unknown error');
}

/**
 * A JSON.parse error as one line that quotes nothing of the text: V8's messages embed the text
 * (`Unexpected token 's', "secret…" is not valid JSON`), and an error must never leak a file.
 */
export function jsonSyntaxMessage(err: unknown): string {
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return message.replace(/, ".*" is not valid JSON$/, '').replace(/^Unexpected token '.+?'/, 'unexpected character');
}
