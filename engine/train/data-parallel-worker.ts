/**
 * A data-parallel replica (see ./data-parallel.ts): a worker thread with its own tfjs backend and
 * a copy of the model. It answers `init` (build the model from its config, load every parameter)
 * with `ready`, and each `step` (the current trainable parameters + a shard of token ids) with the
 * shard's mean loss and gradients (accumulated over its micro-batches), flattened in the model's trainable-parameter order.
 */
import * as tf from '@tensorflow/tfjs-core';
import { parentPort } from 'node:worker_threads';
import { initBackend, type BackendName } from '../backend/backend.js';
import { archOf, createLM } from '../models/index.js';
import type { CausalLM } from '../models/lm.js';
import type { FromWorker, ToWorker } from './data-parallel.js';
import { lmAccumulatedLossAndGrads } from './lm-step.js';

const port = parentPort;
if (!port) throw new Error('data-parallel-worker.ts must run as a worker thread');

let model: CausalLM | null = null;
let trainable: tf.Variable[] = [];

function send(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(m, transfer);
}

/** Overwrite `vars` from one flat buffer, in order. */
function load(vars: tf.Variable[], data: Float32Array): void {
  let o = 0;
  for (const v of vars) {
    const t = tf.tensor(data.subarray(o, o + v.size), v.shape, 'float32');
    v.assign(t);
    t.dispose();
    o += v.size;
  }
  if (o !== data.length) throw new Error(`parameter buffer has ${data.length} floats, the replica expects ${o}`);
}

/** Set by the `hang` test hook: the worker then answers nothing. */
let hung = false;

async function handle(m: ToWorker): Promise<void> {
  if (m.type === 'crash') throw new Error('crash requested by the test hook');
  if (m.type === 'hang') hung = true;
  if (hung || m.type === 'hang') return;
  if (m.type === 'init') {
    await initBackend(m.backend as BackendName);
    model = createLM(archOf(m.config, 'data-parallel replica config'), m.config, 0);
    const vars = m.names.map((n, i) => {
      const v = model!.params.get(n);
      if (v.shape.join(',') !== m.shapes[i].join(',')) throw new Error(`replica parameter ${n} has shape [${v.shape}], expected [${m.shapes[i]}]`);
      return v;
    });
    if (vars.length !== model.params.vars.size) throw new Error(`replica has ${model.params.vars.size} parameters, the main model ${vars.length}`);
    load(vars, m.data);
    trainable = model.params.trainable();
    send({ type: 'ready' });
    return;
  }
  if (!model) throw new Error('step before init');
  load(trainable, m.params);
  const { value, grads } = lmAccumulatedLossAndGrads(model, { x: m.x, y: m.y, batch: m.rows, seq: m.seq }, { microBatches: m.microBatches });
  const total = trainable.reduce((a, v) => a + v.size, 0);
  const flat = new Float32Array(total);
  let o = 0;
  for (const v of trainable) {
    const g = grads.get(model.params.nameOf(v))!;
    flat.set((await g.data()) as Float32Array, o);
    o += v.size;
  }
  const loss = (await value.data())[0];
  tf.dispose([value, ...grads.values()]);
  send({ type: 'grads', id: m.id, loss, grads: flat }, [flat.buffer as ArrayBuffer]);
}

// Messages are handled one at a time, in order.
let queue = Promise.resolve();
port.on('message', (m: ToWorker) => {
  queue = queue.then(() =>
    handle(m).catch((err: unknown) => {
      if (m.type === 'crash') throw err; // an uncaught error: the thread dies, the pool sees it
      send({ type: 'error', message: (err instanceof Error ? err.message : String(err)).split('\n')[0] });
    }),
  );
});
