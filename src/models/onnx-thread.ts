import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

// The inference thread of an InferenceHost (onnx-host.ts). onnxruntime-node's session.run holds the
// calling thread until the model has run — measured: no timer fires during a 300 ms run — so batch
// inference on the main thread would stall every request and every tile read of the process. Here it
// blocks only this thread; tensors arrive and leave as transferred buffers, never copied.

interface Load { type: 'load'; model: Uint8Array; intraOpThreads: number }
interface Run { type: 'run'; id: number; feeds: Record<string, { data: Float32Array; dims: number[] }>; fetches: string[] }

type Reply =
  | { type: 'loaded'; inputNames: readonly string[]; outputNames: readonly string[] }
  | { type: 'result'; id: number; outputs: Record<string, { data: Float32Array; dims: readonly number[]; type: string }> }
  | { type: 'error'; id: number | null; message: string };

const port = parentPort;
if (!port) throw new Error('onnx-thread.ts runs as a worker thread');
let session: ort.InferenceSession | undefined;

port.on('message', (message: Load | Run) => {
  void handle(message).then((reply) => {
    const transfer = reply.type === 'result' ? Object.values(reply.outputs).map((o) => o.data.buffer as ArrayBuffer) : [];
    port.postMessage(reply, transfer);
  });
});

async function handle(message: Load | Run): Promise<Reply> {
  try {
    if (message.type === 'load') {
      session = await ort.InferenceSession.create(message.model, {
        intraOpNumThreads: message.intraOpThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
      return { type: 'loaded', inputNames: session.inputNames, outputNames: session.outputNames };
    }
    if (!session) throw new Error('no model is loaded');
    const feeds = Object.fromEntries(Object.entries(message.feeds).map(([name, t]) => [name, new ort.Tensor('float32', t.data, t.dims)]));
    const results = await session.run(feeds, message.fetches);
    const outputs: Record<string, { data: Float32Array; dims: readonly number[]; type: string }> = {};
    for (const name of message.fetches) {
      const value = results[name];
      if (!value) throw new Error(`the model has no output "${name}"`);
      // A copy owned by this reply, so that its buffer can be transferred.
      outputs[name] = { data: Float32Array.from(value.data as Float32Array), dims: value.dims, type: value.type };
    }
    return { type: 'result', id: message.id, outputs };
  } catch (e) {
    return { type: 'error', id: message.type === 'run' ? message.id : null, message: (e as Error).message };
  }
}
