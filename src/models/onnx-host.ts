import { Worker } from 'node:worker_threads';

// Runs one ONNX model on a thread of its own (onnx-thread.ts), so that inference does not hold the
// event loop: while a batch is in the model, the main thread keeps reading and decoding the next
// batch's tiles and answering requests. Runs are queued in order on the thread.

export interface HostTensor {
  data: Float32Array;
  dims: readonly number[];
}

export interface InferenceHost {
  inputNames: readonly string[];
  outputNames: readonly string[];
  /** Runs the model; the feeds' buffers are transferred to the thread (unusable here afterwards). */
  run(feeds: Record<string, HostTensor>, fetches: readonly string[]): Promise<Record<string, HostTensor & { type: string }>>;
  close(): Promise<void>;
}

type Reply =
  | { type: 'loaded'; inputNames: readonly string[]; outputNames: readonly string[] }
  | { type: 'result'; id: number; outputs: Record<string, HostTensor & { type: string }> }
  | { type: 'error'; id: number | null; message: string };

export async function startInferenceHost(model: Uint8Array, options: { intraOpThreads: number }): Promise<InferenceHost> {
  const worker = new Worker(new URL('./onnx-thread.ts', import.meta.url));
  // The thread must not keep a finished process alive.
  worker.unref();
  const pending = new Map<number, { resolve: (r: Record<string, HostTensor & { type: string }>) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let failed: Error | undefined;
  const loaded = new Promise<{ inputNames: readonly string[]; outputNames: readonly string[] }>((resolve, reject) => {
    worker.on('message', (reply: Reply) => {
      if (reply.type === 'loaded') return resolve(reply);
      if (reply.type === 'error' && reply.id === null) return reject(new Error(reply.message));
      if (reply.id === null) return;
      const waiter = pending.get(reply.id);
      pending.delete(reply.id);
      if (reply.type === 'result') waiter?.resolve(reply.outputs);
      else waiter?.reject(new Error(reply.message));
    });
    const fail = (e: Error) => {
      failed = e;
      reject(e);
      for (const waiter of pending.values()) waiter.reject(e);
      pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the inference thread stopped (exit code ${code})`)));
  });
  worker.postMessage({ type: 'load', model, intraOpThreads: options.intraOpThreads });
  let names: { inputNames: readonly string[]; outputNames: readonly string[] };
  try {
    names = await loaded;
  } catch (e) {
    await worker.terminate();
    throw e;
  }
  return {
    ...names,
    run(feeds, fetches) {
      if (failed) return Promise.reject(failed);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ type: 'run', id, feeds, fetches }, Object.values(feeds).map((t) => t.data.buffer as ArrayBuffer));
      });
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}
