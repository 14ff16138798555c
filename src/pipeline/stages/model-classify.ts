import { z } from 'zod';
import type { Finding } from '../../core/result.ts';
import type { ModelCatalog } from '../../models/catalog.ts';
import { defineStage } from '../stage.ts';
import { decodeInput, type ImageLimits } from './decode-input.ts';

export function createModelClassifyStage(deps: { models: ModelCatalog; limits: ImageLimits }) {
  return defineStage({
    name: 'model.classify',
    description: 'Runs an image classifier from the model catalog and records one finding per label.',
    params: z.object({
      model: z.string().min(1),
      /** Only labels at or above this probability become findings (0 keeps every label). */
      minProbability: z.number().min(0).max(1).default(0),
    }).strict(),
    output: z.object({
      model: z.string(),
      version: z.string(),
      top: z.object({ code: z.string(), probability: z.number() }),
      probabilities: z.record(z.string(), z.number()),
    }),
    async run(ctx) {
      const classifier = await deps.models.classifier(ctx.params.model);
      const image = await decodeInput(await ctx.readInput(), deps.limits);
      const classes = await classifier.classify(image);
      const sorted = [...classes].sort((a, b) => b.probability - a.probability);
      const top = sorted[0];
      if (!top) throw new Error(`${ctx.params.model} returned no classes`);
      const findings: Finding[] = sorted
        .filter((c) => c.probability >= ctx.params.minProbability)
        .map((c) => ({ stage: ctx.stageId, code: c.code, label: c.display, probability: c.probability, model: classifier.ref }));
      return {
        data: {
          model: classifier.ref.name,
          version: classifier.ref.version,
          top: { code: top.code, probability: top.probability },
          probabilities: Object.fromEntries(classes.map((c) => [c.code, c.probability])),
        },
        findings,
        models: [classifier.ref],
      };
    },
  });
}
