import { z } from 'zod';
import { measureQuality, qualityProblems } from '../../imaging/quality.ts';
import { defineStage } from '../stage.ts';
import { decodeInput, type ImageLimits } from './decode-input.ts';

export function createImageQualityStage(limits: ImageLimits) {
  return defineStage({
    name: 'image.quality',
    description: 'Measures brightness, contrast and sharpness; images below the thresholds make the treatment policy abstain.',
    params: z.object({
      minBrightness: z.number().min(0).max(255).default(15),
      maxBrightness: z.number().min(0).max(255).default(248),
      minContrast: z.number().min(0).default(8),
      minSharpness: z.number().min(0).default(7),
    }).strict(),
    output: z.object({
      brightness: z.number(),
      contrast: z.number(),
      sharpness: z.number(),
      acceptable: z.boolean(),
      problems: z.array(z.string()),
    }),
    async run(ctx) {
      const metrics = await measureQuality(await decodeInput(await ctx.readInput(), limits));
      const problems = qualityProblems(metrics, ctx.params);
      return { data: { ...metrics, acceptable: problems.length === 0, problems } };
    },
  });
}
