import { z } from 'zod';
import { ClinicalFeatures, Recommendation, type AbstainReasonCode } from '../../core/report.ts';
import type { SqlExecutor } from '../../core/ports.ts';
import { createLlmRecommender, createOfflineProvider, type LlmFailurePolicy, type LlmProvider } from '../../llm/index.ts';
import { defineStage, type StageContext } from '../stage.ts';

const ClassifyOutput = z.object({ probabilities: z.record(z.string(), z.number()), labels: z.record(z.string(), z.string()).default({}) });

export interface LlmStageDeps {
  db: SqlExecutor;
  provider: LlmProvider;
  fallbackProvider: LlmProvider;
  onFailure: LlmFailurePolicy;
  label: string;
}

/**
 * Dependencies for building the stage registry without a database or network (listing pipelines,
 * validating specs): the offline rules, and a database that fails loudly if a stage tried to use it.
 */
export function detachedLlmDeps(label: string): LlmStageDeps {
  const offline = createOfflineProvider();
  const db = { query: () => Promise.reject(new Error('this stage registry was built without a database')) };
  return { db, provider: offline, fallbackProvider: offline, onFailure: 'fallback', label };
}

/** Reads an earlier stage's output if the pipeline has that stage and it produced the expected shape. */
/**
 * The output of an earlier stage, if it ran and has that shape. Given several stage ids (the branches
 * of a route, of which one ran), the first that ran.
 */
export function optionalOutput<T>(ctx: StageContext<unknown>, stageId: string | readonly string[] | undefined, schema: z.ZodType<T>): T | undefined {
  for (const id of typeof stageId === 'string' ? [stageId] : stageId ?? []) {
    if (!ctx.outputs.has(id)) continue;
    const parsed = schema.safeParse(ctx.outputs.get(id));
    if (parsed.success) return parsed.data;
  }
  return undefined;
}

/** A stage id, or several of which the first that ran is used (routed pipelines). */
export const StageRef = z.union([z.string(), z.array(z.string()).min(1)]);

/**
 * What of a recommendation may enter a prompt: for an escalation, the reason codes and features with a
 * fixed wording — never the reason messages (they can quote the note) nor the withheld probabilities.
 */
function forPrompt(r: Recommendation | undefined): Recommendation | null {
  if (!r) return null;
  if (r.status === 'recommended') return r;
  return {
    status: 'abstained',
    display: r.display,
    reasons: r.reasons.map((x) => ({ code: x.code, message: REASON_TEXT[x.code], ...(x.feature ? { feature: x.feature } : {}) })),
    ...(r.model ? { model: r.model } : {}),
  };
}

const REASON_TEXT: Record<AbstainReasonCode, string> = {
  NO_CLINICAL_NOTE: 'no clinical note was provided',
  FEATURE_MISSING: 'a required clinical value is missing',
  FEATURE_OUT_OF_RANGE: 'a value is outside the valid or trained range',
  FEATURE_CONTRADICTORY: 'the note gives contradictory values',
  FEATURE_UNPARSEABLE: 'a value in the note could not be read',
  LOW_IMAGE_QUALITY: 'the image quality is too low',
  LOW_IMAGE_CONFIDENCE: 'the image classifier is not confident',
  LOW_CONFIDENCE: 'the recommender is not confident',
};

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
      findingsStage: StageRef.default('classify'),
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
        recommendation: forPrompt(recommendation?.recommendation),
      }, ctx.signal);
      return {
        data: { provider: llm.provider, model: llm.model, promptVersion: llm.prompt.version, fallback: llm.fallback },
        report: { llm },
      };
    },
  });
}
