import { z } from 'zod';
import { MediaType } from '../../core/result.ts';
import { defineStage } from '../stage.ts';
import { decodeInput, type ImageLimits } from './decode-input.ts';

/** Decodes the whole input once (headers were checked at ingest) so corrupt or truncated pixels fail here. */
export function createImageValidateStage(limits: ImageLimits) {
  return defineStage({
    name: 'image.validate',
    description: 'Checks type, dimensions and limits again, and decodes the pixels to prove the file is complete.',
    params: z.object({}).strict(),
    output: z.object({ mediaType: MediaType, width: z.number().int().positive(), height: z.number().int().positive() }),
    async run(ctx) {
      const image = await decodeInput(await ctx.readInput(), limits);
      return { data: { mediaType: image.mediaType, width: image.width, height: image.height } };
    },
  });
}
