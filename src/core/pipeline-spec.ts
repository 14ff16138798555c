import { z } from 'zod';
import { MediaType } from './result.ts';

// A pipeline is data (DESIGN.md §1): an ordered list of stages, each naming a registered stage
// implementation (`uses`) and its parameters (`with`, validated by that stage's own schema at load).

export const StageSpec = z.object({
  id: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and "-", starting with a letter'),
  uses: z.string().min(1),
  with: z.record(z.string(), z.unknown()).default({}),
  retry: z.object({ attempts: z.number().int().min(1).max(10), backoffMs: z.number().int().min(0).max(60_000) }).optional(),
}).strict();
export type StageSpec = z.infer<typeof StageSpec>;

export const PipelineSpec = z.object({
  name: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and "-"'),
  version: z.number().int().positive(),
  description: z.string().default(''),
  accepts: z.array(MediaType).min(1),
  stages: z.array(StageSpec).min(1),
}).strict().superRefine((spec, ctx) => {
  const seen = new Set<string>();
  spec.stages.forEach((s, i) => {
    if (seen.has(s.id)) ctx.addIssue({ code: 'custom', path: ['stages', i, 'id'], message: `duplicate stage id "${s.id}"` });
    seen.add(s.id);
  });
});
export type PipelineSpec = z.infer<typeof PipelineSpec>;

/** Formats zod issues as "path: message" lines, so a user can find the line in their YAML. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}
