import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { AppError } from '../../core/errors.ts';
import type { Heatmap } from '../../core/report.ts';
import type { Finding } from '../../core/result.ts';
import { camForClass, type LinearHead } from '../../models/cam.ts';
import { renderOverlay } from '../../models/cam-render.ts';
import type { ModelCatalog } from '../../models/catalog.ts';
import type { ImageClassifier } from '../../models/onnx-classifier.ts';
import type { RgbImage } from '../../models/preprocess.ts';
import { defineStage } from '../stage.ts';
import { decodeInput, type ImageLimits } from './decode-input.ts';

const HeadWeights = z.object({ weight: z.array(z.array(z.number())).min(1) });
/** Overlays are stored at most this many pixels on their longer side: enough to read, small to serve. */
const OVERLAY_MAX_SIDE = 512;

const heads = new WeakMap<ImageClassifier, Promise<LinearHead>>();

function camWeights(classifier: ImageClassifier): Promise<LinearHead> {
  let pending = heads.get(classifier);
  if (!pending) {
    pending = (async () => {
      const file = classifier.manifest.explanation.cam?.weights;
      if (!file || !classifier.manifest.outputs.featureMap) {
        throw new AppError('MODEL_MANIFEST_INVALID', `${classifier.ref.name} declares no CAM weights (explanation.cam.weights) and feature map (outputs.featureMap); remove "explain: cam" or add them`);
      }
      const full = path.resolve(classifier.dir, file);
      if (!full.startsWith(classifier.dir + path.sep)) throw new AppError('MODEL_MANIFEST_INVALID', `${classifier.ref.name}: CAM weights must be a file inside ${classifier.dir}`);
      const parsed = HeadWeights.safeParse(JSON.parse(await readFile(full, 'utf8')));
      if (!parsed.success || parsed.data.weight.length !== classifier.manifest.outputs.labels.length) {
        throw new AppError('MODEL_MANIFEST_INVALID', `${full} must hold "weight": one array of channel weights per label`);
      }
      return parsed.data;
    })();
    pending.catch(() => heads.delete(classifier));
    heads.set(classifier, pending);
  }
  return pending;
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
      /** `cam`: store a class activation map of the top class as a PNG overlay. */
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
      const sorted = [...classes].sort((a, b) => b.probability - a.probability);
      const top = sorted[0];
      if (!top) throw new AppError('MODEL_INFERENCE_FAILED', `${ctx.params.model} returned no classes`);

      const heatmaps: Heatmap[] = [];
      if (explained) {
        const classIndex = classes.findIndex((c) => c.code === top.code);
        const cam = camForClass(explained.featureMap.data, explained.featureMap.dims, await camWeights(classifier), classIndex);
        const background = await downscale(image);
        const png = await renderOverlay(background, cam.map, [cam.height, cam.width]);
        // File names stay within [a-z0-9-] whatever the label codes are, so the files route can serve them.
        const safe = `${ctx.stageId}-${top.code}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
        const objectKey = await ctx.putObject(`heatmap-${safe}.png`, png);
        heatmaps.push({ model: classifier.ref.name, label: top.code, method: 'cam', objectKey, width: background.width, height: background.height });
      }
      const findings: Finding[] = sorted
        .filter((c) => c.probability >= ctx.params.minProbability)
        .map((c) => ({ stage: ctx.stageId, code: c.code, label: c.display, probability: c.probability, model: classifier.ref }));
      return {
        data: {
          model: classifier.ref.name,
          version: classifier.ref.version,
          top: { code: top.code, probability: top.probability },
          probabilities: Object.fromEntries(classes.map((c) => [c.code, c.probability])),
          labels: Object.fromEntries(classes.map((c) => [c.code, c.display])),
          minProbability: classifier.manifest.confidence.minProbability,
        },
        findings,
        models: [classifier.ref],
        ...(heatmaps.length ? { report: { heatmaps } } : {}),
      };
    },
  });
}
