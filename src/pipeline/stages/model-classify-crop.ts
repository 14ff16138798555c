import { z } from 'zod';
import { AppError } from '../../core/errors.ts';
import type { ModelCatalog } from '../../models/catalog.ts';
import { defineStage } from '../stage.ts';
import { classificationResult } from './model-classify.ts';
import { decodeInput, type ImageLimits } from './decode-input.ts';
import { DetectOutput } from './model-detect.ts';

/** Reads a stored object (a crop saved by an earlier stage) by its key. */
export interface ObjectReader {
  get(key: string): Promise<Buffer>;
}

/** `objects` may be absent where no case runs (listing stages); reading a crop then fails. */
export function createModelClassifyCropStage(deps: { models: Pick<ModelCatalog, 'classifier'>; objects?: ObjectReader | undefined; limits: ImageLimits }) {
  return defineStage({
    name: 'model.classify-crop',
    description: 'Runs an image classifier on the crop saved by a model.detect stage, or on the whole image when that stage found nothing (or did not run); one finding per label.',
    params: z.object({
      model: z.string().min(1),
      /** Id of the model.detect stage whose crop is classified. */
      imageFrom: z.string().regex(/^[a-z][a-z0-9-]*$/, 'the id of a model.detect stage of this pipeline'),
      /** Only labels at or above this probability become findings (0 keeps every label). */
      minProbability: z.number().min(0).max(1).default(0),
    }).strict(),
    // model.classify's output plus where the pixels came from, so stages reading classify outputs read this one too.
    output: z.object({
      model: z.string(),
      version: z.string(),
      top: z.object({ code: z.string(), probability: z.number() }),
      probabilities: z.record(z.string(), z.number()),
      labels: z.record(z.string(), z.string()),
      minProbability: z.number(),
      /** `crop`: the detection crop was classified; `image`: the whole case image (nothing detected, or no detect output). */
      source: z.enum(['crop', 'image']),
      cropKey: z.string().nullable(),
    }),
    async run(ctx) {
      const { imageFrom } = ctx.params;
      let cropKey: string | null = null;
      if (ctx.outputs.has(imageFrom)) {
        const parsed = DetectOutput.safeParse(ctx.outputs.get(imageFrom));
        if (!parsed.success) {
          throw new AppError('PIPELINE_SPEC_INVALID', `stage "${ctx.stageId}": imageFrom "${imageFrom}" is not a model.detect stage; name the stage that runs model.detect`);
        }
        cropKey = parsed.data.crop?.objectKey ?? null;
      }
      const classifier = await deps.models.classifier(ctx.params.model);
      let bytes: Buffer;
      if (cropKey) {
        if (!deps.objects) throw new AppError('INTERNAL', 'model.classify-crop was registered without an object store, so it cannot read the crop');
        bytes = await deps.objects.get(cropKey);
      } else {
        bytes = await ctx.readInput();
      }
      const image = await decodeInput(bytes, deps.limits);
      const classes = await classifier.classify(image);
      const { data, findings } = classificationResult(classifier, classes, ctx.stageId, ctx.params.minProbability);
      return {
        data: {
          ...data,
          source: cropKey ? 'crop' as const : 'image' as const,
          cropKey,
        },
        findings,
        models: [classifier.ref],
      };
    },
  });
}
