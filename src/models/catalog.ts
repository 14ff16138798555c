import { readManifest } from './manifest.ts';
import { loadOnnxClassifier, type ImageClassifier, type OnnxOptions } from './onnx-classifier.ts';

/** Loads each model once per process and shares it between requests and jobs. */
export interface ModelCatalog {
  classifier(name: string): Promise<ImageClassifier>;
  close(): Promise<void>;
}

export function createModelCatalog(modelsDir: string, options: OnnxOptions): ModelCatalog {
  const loading = new Map<string, Promise<ImageClassifier>>();
  return {
    classifier(name) {
      let pending = loading.get(name);
      if (!pending) {
        pending = readManifest(modelsDir, name).then((m) => loadOnnxClassifier(m, options));
        // A failed load is not cached: fixing the file and retrying must work without a restart.
        pending.catch(() => loading.delete(name));
        loading.set(name, pending);
      }
      return pending;
    },
    async close() {
      const all = await Promise.allSettled(loading.values());
      for (const r of all) if (r.status === 'fulfilled') await r.value.close();
      loading.clear();
    },
  };
}
