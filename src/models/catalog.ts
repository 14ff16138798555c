import { readManifest } from './manifest.ts';
import { loadOnnxClassifier, type ImageClassifier, type OnnxOptions } from './onnx-classifier.ts';
import { loadTabularModel, type TabularModel } from './tabular.ts';
import { loadOnnxDetector, type ObjectDetector } from './detector.ts';

/** Loads each model once per process and shares it between requests and jobs. */
export interface ModelCatalog {
  classifier(name: string): Promise<ImageClassifier>;
  tabular(name: string): Promise<TabularModel>;
  detector(name: string): Promise<ObjectDetector>;
  close(): Promise<void>;
}

export function createModelCatalog(modelsDir: string, options: OnnxOptions): ModelCatalog {
  const loading = new Map<string, Promise<ImageClassifier>>();
  const tabular = new Map<string, Promise<TabularModel>>();
  const detectors = new Map<string, Promise<ObjectDetector>>();
  function once<T>(cache: Map<string, Promise<T>>, name: string, load: () => Promise<T>): Promise<T> {
    let pending = cache.get(name);
    if (!pending) {
      pending = load();
      // A failed load is not cached: fixing the file and retrying must work without a restart.
      pending.catch(() => cache.delete(name));
      cache.set(name, pending);
    }
    return pending;
  }
  return {
    classifier: (name) => once(loading, name, () => readManifest(modelsDir, name).then((m) => loadOnnxClassifier(m, options))),
    tabular: (name) => once(tabular, name, () => readManifest(modelsDir, name).then(loadTabularModel)),
    detector: (name) => once(detectors, name, () => readManifest(modelsDir, name).then((m) => loadOnnxDetector(m, options))),
    async close() {
      const all = await Promise.allSettled([...loading.values(), ...detectors.values()]);
      for (const r of all) if (r.status === 'fulfilled') await r.value.close();
      loading.clear();
      detectors.clear();
      tabular.clear();
    },
  };
}
