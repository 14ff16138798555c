import { z } from 'zod';
import { ClinicalFeatures, Recommendation } from '../../core/report.ts';
import type { SqlExecutor } from '../../core/ports.ts';
import { createLlmRecommender, type LlmFailurePolicy, type LlmProvider } from '../../llm/index.ts';
import { defineStage, type StageContext } from '../stage.ts';

const ClassifyOutput = z.object({ probabilities: z.record(z.string(), z.number()), labels: z.record(z.string(), z.string()).default({}) });

export interface LlmStageDeps {
  db: SqlExecutor;
  provider: LlmProvider;
  fallbackProvider: LlmProvider;
  onFailure: LlmFailurePolicy;
  label: string;
}

/** Reads an earlier stage's output if the pipeline has that stage and it produced the expected shape. */
export function optionalOutput<T>(ctx: StageContext<unknown>, stageId: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (!stageId || !ctx.outputs.has(stageId)) return undefined;
  const parsed = schema.safeParse(ctx.outputs.get(stageId));
  return parsed.success ? parsed.data : undefined;
}

/**
 * The LLM recommendation: the labelled prompt version rendered with de-identified findings, feature
 * values and the recommendation only — the note text and case metadata are not even in scope here.
 */
export function createLlmRecommendStage(deps: LlmStageDeps) {
  return defineStage({
    name: 'llm.recommend',
    description: 'Writes differential diagnoses, follow-up tests and treatment considerations with a versioned prompt (offline rules unless an LLM endpoint is configured).',
    params: z.object({
      prompt: z.string().regex(/^[a-z0-9][a-z0-9-]*$/).default('treatment-recommendation'),
      findingsStage: z.string().default('classify'),
      clinicalStage: z.string().default('note'),
      recommendStage: z.string().default('recommend'),
    }).strict(),
    output: z.object({ provider: z.string(), model: z.string(), promptVersion: z.number(), fallback: z.boolean() }),
    async run(ctx) {
      const recommender = createLlmRecommender({
        db: deps.db,
        provider: deps.provider,
        fallbackProvider: deps.fallbackProvider,
        promptName: ctx.params.prompt,
        label: deps.label,
        onFailure: deps.onFailure,
      });
      const classify = optionalOutput(ctx, ctx.params.findingsStage, ClassifyOutput);
      const clinical = optionalOutput(ctx, ctx.params.clinicalStage, ClinicalFeatures);
      const recommendation = optionalOutput(ctx, ctx.params.recommendStage, z.object({ recommendation: Recommendation }));
      const llm = await recommender.recommend({
        pipeline: ctx.pipeline,
        findings: Object.entries(classify?.probabilities ?? {}).map(([code, probability]) => ({ code, label: classify?.labels[code] ?? code, probability })),
        features: clinical?.values ?? {},
        recommendation: recommendation?.recommendation ?? null,
      }, ctx.signal);
      return {
        data: { provider: llm.provider, model: llm.model, promptVersion: llm.prompt.version, fallback: llm.fallback },
        report: { llm },
      };
    },
  });
}
