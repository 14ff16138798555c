import { z } from 'zod';
import { defineStage } from '../stage.ts';

/** Waits, then passes. For exercising resume and shutdown behaviour in tests and demos. */
export const utilDelayStage = defineStage({
  name: 'util.delay',
  description: 'Waits the given number of milliseconds (for tests and demonstrations of resume).',
  params: z.object({ ms: z.number().int().min(0).max(600_000) }).strict(),
  output: z.object({ waitedMs: z.number() }),
  async run(ctx) {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, ctx.params.ms);
      ctx.signal.addEventListener('abort', () => { clearTimeout(t); reject(ctx.signal.reason); }, { once: true });
    });
    return { data: { waitedMs: ctx.params.ms } };
  },
});
