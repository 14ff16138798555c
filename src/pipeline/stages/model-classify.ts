import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { AppError } from '../../core/errors.ts';
import type { Heatmap } from '../../core/report.ts';
import type { Finding } from '../../core/result.ts';
import * as ort from 'onnxruntime-node';
import { camForClass, gradCamMap, gradCamWeights, type LinearHead } from '../../models/cam.ts';
import { renderOverlay } from '../../models/cam-render.ts';
import type { ModelCatalog } from '../../models/catalog.ts';
import type { ClassProbability, FeatureMap, ImageClassifier } from '../../models/onnx-classifier.ts';
import type { RgbImage } from '../../models/preprocess.ts';
import { defineStage } from '../stage.ts';
import { decodeInput, type ImageLimits } from './decode-input.ts';

/**
 * What a classifier stage reports: the output other stages read (top class, probabilities, labels, the
 * manifest's minimum probability) and one finding per label at or above minProbability.
 */
export function classificationResult(classifier: ImageClassifier, classes: readonly ClassProbability[], stageId: string, minProbability: number) {
  const sorted = [...classes].sort((a, b) => b.probability - a.probability);
  const top = sorted[0];
  if (!top) throw new AppError('MODEL_INFERENCE_FAILED', `${classifier.ref.name} returned no classes`);
  const findings: Finding[] = sorted
    .filter((c) => c.probability >= minProbability)
    .map((c) => ({ stage: stageId, code: c.code, label: c.display, probability: c.probability, model: classifier.ref }));
  return {
    top,
    findings,
    data: {
      model: classifier.ref.name,
      version: classifier.ref.version,
      top: { code: top.code, probability: top.probability },
      probabilities: Object.fromEntries(classes.map((c) => [c.code, c.probability])),
      labels: Object.fromEntries(classes.map((c) => [c.code, c.display])),
      minProbability: classifier.manifest.confidence.minProbability,
    },
  };
}

const HeadWeights = z.object({ weight: z.array(z.array(z.number())).min(1) });
/** Overlays are stored at most this many pixels on their longer side: enough to read, small to serve. */
const OVERLAY_MAX_SIDE = 512;

/** How a classifier's heatmaps are computed: CAM from linear head weights, or Grad-CAM through a head model. */
type Explainer =
  | { method: 'cam'; head: LinearHead }
  | { method: 'grad-cam'; session: ort.InferenceSession; input: string; output: string };

const explainers = new WeakMap<ImageClassifier, Promise<Explainer>>();

function fileInModel(classifier: ImageClassifier, file: string, what: string): string {
  const full = path.resolve(classifier.dir, file);
  if (!full.startsWith(classifier.dir + path.sep)) throw new AppError('MODEL_MANIFEST_INVALID', `${classifier.ref.name}: ${what} must be a file inside ${classifier.dir}`);
  return full;
}

function explainer(classifier: ImageClassifier): Promise<Explainer> {
  let pending = explainers.get(classifier);
  if (!pending) {
    pending = (async (): Promise<Explainer> => {
      const { explanation, outputs } = classifier.manifest;
      if (!outputs.featureMap || (!explanation.cam && !explanation.gradCam)) {
        throw new AppError('MODEL_MANIFEST_INVALID', `${classifier.ref.name} declares no feature map (outputs.featureMap) with CAM weights (explanation.cam) or a Grad-CAM head (explanation.gradCam); remove "explain: cam" or add them`);
      }
      if (explanation.cam) {
        const full = fileInModel(classifier, explanation.cam.weights, 'CAM weights');
        const parsed = HeadWeights.safeParse(JSON.parse(await readFile(full, 'utf8')));
        if (!parsed.success || parsed.data.weight.length !== outputs.labels.length) {
          throw new AppError('MODEL_MANIFEST_INVALID', `${full} must hold "weight": one array of channel weights per label`);
        }
        return { method: 'cam', head: parsed.data };
      }
      const grad = explanation.gradCam as NonNullable<typeof explanation.gradCam>;
      const session = await ort.InferenceSession.create(fileInModel(classifier, grad.head, 'the Grad-CAM head'), { intraOpNumThreads: 1 });
      return { method: 'grad-cam', session, input: grad.input, output: grad.output };
    })();
    pending.catch(() => explainers.delete(classifier));
    explainers.set(classifier, pending);
  }
  return pending;
}

async function activationMap(classifier: ImageClassifier, featureMap: FeatureMap, classIndex: number): Promise<{ method: 'cam' | 'grad-cam'; map: Float32Array; height: number; width: number }> {
  const e = await explainer(classifier);
  const [, height, width] = featureMap.dims;
  if (e.method === 'cam') {
    const cam = camForClass(featureMap.data, featureMap.dims, e.head, classIndex);
    return { method: 'cam', map: cam.map, height: cam.height, width: cam.width };
  }
  const weights = await gradCamWeights(e.session, e.input, e.output, featureMap.data, featureMap.dims, classIndex);
  return { method: 'grad-cam', map: gradCamMap(featureMap.data, featureMap.dims, weights), height, width };
}

async function downscale(image: RgbImage): Promise<RgbImage> {
  if (Math.max(image.width, image.height) <= OVERLAY_MAX_SIDE) return image;
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE, { fit: 'inside' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

export function createModelClassifyStage(deps: { models: ModelCatalog; limits: ImageLimits }) {
  return defineStage({
    name: 'model.classify',
    description: 'Runs an image classifier from the model catalog and records one finding per label; optionally a CAM heatmap of the top class.',
    params: z.object({
      model: z.string().min(1),
      /** Only labels at or above this probability become findings (0 keeps every label). */
      minProbability: z.number().min(0).max(1).default(0),
      /** `cam`: store a class activation map of the top class as a PNG overlay (CAM, or Grad-CAM for a non-linear head). */
      explain: z.enum(['none', 'cam']).default('none'),
    }).strict(),
    output: z.object({
      model: z.string(),
      version: z.string(),
      top: z.object({ code: z.string(), probability: z.number() }),
      probabilities: z.record(z.string(), z.number()),
      /** Display names of the labels, by code. */
      labels: z.record(z.string(), z.string()),
      /** The model's own confidence threshold (manifest), for later policy stages. */
      minProbability: z.number(),
    }),
    async run(ctx) {
      const classifier = await deps.models.classifier(ctx.params.model);
      const image = await decodeInput(await ctx.readInput(), deps.limits);
      const explained = ctx.params.explain === 'cam' ? await classifier.classifyWithFeatureMap(image) : undefined;
      const classes = explained?.classes ?? await classifier.classify(image);
      const { top, data, findings } = classificationResult(classifier, classes, ctx.stageId, ctx.params.minProbability);

      const heatmaps: Heatmap[] = [];
      if (explained) {
        const classIndex = classes.findIndex((c) => c.code === top.code);
        const cam = await activationMap(classifier, explained.featureMap, classIndex);
        const background = await downscale(image);
        const png = await renderOverlay(background, cam.map, [cam.height, cam.width]);
        // File names stay within [a-z0-9-] whatever the label codes are, so the files route can serve them.
        const safe = `${ctx.stageId}-${top.code}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
        const objectKey = await ctx.putObject(`heatmap-${safe}.png`, png);
        heatmaps.push({ model: classifier.ref.name, label: top.code, method: cam.method, objectKey, width: background.width, height: background.height });
      }
      return {
        data,
        findings,
        models: [classifier.ref],
        ...(heatmaps.length ? { report: { heatmaps } } : {}),
      };
    },
  });
}
