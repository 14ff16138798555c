import sharp from 'sharp';
import { z } from 'zod';
import type { Finding } from '../../core/result.ts';
import type { Box, Detection, DetectorSource } from '../../models/detector.ts';
import type { RgbImage } from '../../models/preprocess.ts';
import { defineStage } from '../stage.ts';
import { decodeInput, type ImageLimits } from './decode-input.ts';

/** Crops are stored at most this many pixels on their longer side: a crop classifier reads far fewer. */
export const CROP_MAX_SIDE = 1024;

const BoxSchema = z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() });
const DetectionSchema = z.object({ label: z.string(), display: z.string(), score: z.number().min(0).max(1), box: BoxSchema });

/** The output of model.detect, for stages that read it (model.classify-crop, route). */
export const DetectOutput = z.object({
  model: z.string(),
  version: z.string(),
  image: z.object({ width: z.number().int(), height: z.number().int() }),
  /** Best first, boxes in image pixels. */
  detections: z.array(DetectionSchema),
  /** Detections per label code (every label of the model, 0 included). */
  counts: z.record(z.string(), z.number().int()),
  /** The best detection among the labels named by `bestOf` (all labels by default). */
  best: DetectionSchema.nullable(),
  /** The best detection's padded crop, stored as PNG; `region` is where it was cut, in image pixels. */
  crop: z.object({ objectKey: z.string(), width: z.number().int(), height: z.number().int(), region: BoxSchema }).nullable(),
});
export type DetectOutput = z.infer<typeof DetectOutput>;

const round1 = (v: number) => Math.round(v * 10) / 10;

/** The box grown by `padding` × its size on each side, in whole pixels, clipped to the image. */
export function paddedRegion(box: Box, padding: number, width: number, height: number): { left: number; top: number; width: number; height: number } {
  const left = Math.max(0, Math.floor(box.x - padding * box.width));
  const top = Math.max(0, Math.floor(box.y - padding * box.height));
  const right = Math.min(width, Math.ceil(box.x + box.width + padding * box.width));
  const bottom = Math.min(height, Math.ceil(box.y + box.height + padding * box.height));
  return { left, top, width: Math.max(1, right - left), height: Math.max(1, bottom - top) };
}

async function cropPng(image: RgbImage, region: ReturnType<typeof paddedRegion>): Promise<{ png: Buffer; width: number; height: number }> {
  let pipeline = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).extract(region);
  if (Math.max(region.width, region.height) > CROP_MAX_SIDE) pipeline = pipeline.resize(CROP_MAX_SIDE, CROP_MAX_SIDE, { fit: 'inside' });
  const { data, info } = await pipeline.png().toBuffer({ resolveWithObject: true });
  return { png: data, width: info.width, height: info.height };
}

export function createModelDetectStage(deps: { models: DetectorSource; limits: ImageLimits }) {
  return defineStage({
    name: 'model.detect',
    description: 'Runs an object detector from the model catalog on the case image; stores the best detection’s crop for a crop classifier and records one finding per detected label.',
    params: z.object({
      model: z.string().min(1),
      /** Store the best detection's crop as a PNG (crop-<stage>.png). */
      saveCrop: z.boolean().default(true),
      /** Margin added around the box on each side, as a fraction of the box's width and height. */
      padding: z.number().min(0).max(2).default(0.15),
      /** Label codes that may be `best` (and cropped); all labels when unset. */
      bestOf: z.array(z.string().min(1)).min(1).optional(),
      /** Overrides the manifest's score threshold. */
      scoreThreshold: z.number().min(0).max(1).optional(),
    }).strict(),
    output: DetectOutput,
    async run(ctx) {
      const detector = await deps.models.detector(ctx.params.model);
      const image = await decodeInput(await ctx.readInput(), deps.limits);
      const found = await detector.detect(image, ctx.params.scoreThreshold === undefined ? {} : { scoreThreshold: ctx.params.scoreThreshold });
      const labels = detector.manifest.detection.labels;
      const detections = found.map((d: Detection) => ({
        label: d.code,
        display: d.display,
        score: d.score,
        box: { x: round1(d.box.x), y: round1(d.box.y), width: round1(d.box.width), height: round1(d.box.height) },
      }));
      const eligible = ctx.params.bestOf;
      const bestIndex = found.findIndex((d) => !eligible || eligible.includes(d.code));
      const best = detections[bestIndex] ?? null;

      let crop: DetectOutput['crop'] = null;
      const bestFound = found[bestIndex];
      if (ctx.params.saveCrop && bestFound) {
        const region = paddedRegion(bestFound.box, ctx.params.padding, image.width, image.height);
        const { png, width, height } = await cropPng(image, region);
        // Stage ids are [a-z0-9-] already (pipeline spec), so the name is safe for the files route.
        const objectKey = await ctx.putObject(`crop-${ctx.stageId}.png`, png);
        crop = { objectKey, width, height, region: { x: region.left, y: region.top, width: region.width, height: region.height } };
      }

      // One finding per label, from its best detection: findings are unique per stage and code.
      const findings: Finding[] = [];
      for (const d of found) {
        if (findings.some((f) => f.code === d.code)) continue;
        findings.push({ stage: ctx.stageId, code: d.code, label: d.display, probability: d.score, model: detector.ref });
      }
      return {
        data: {
          model: detector.ref.name,
          version: detector.ref.version,
          image: { width: image.width, height: image.height },
          detections,
          counts: Object.fromEntries(labels.map((l) => [l.code, found.filter((d) => d.code === l.code).length])),
          best,
          crop,
        },
        findings,
        models: [detector.ref],
        report: { detection: { model: detector.ref.name, version: detector.ref.version, image: { width: image.width, height: image.height }, detections, crop } },
      };
    },
  });
}
