import { z } from 'zod';
import { suggestBilling } from '../../clinical/billing.ts';
import { ClinicalFeatures, Recommendation } from '../../core/report.ts';
import { defineStage } from '../stage.ts';
import { optionalOutput, StageRef } from './llm-recommend.ts';

const ClassifyOutput = z.object({ probabilities: z.record(z.string(), z.number()) });

/** ICD-10-CM and CPT suggestions from the versioned code table; always marked as suggestions. */
export const billingSuggestStage = defineStage({
  name: 'billing.suggest',
  description: 'Suggests ICD-10-CM and CPT codes, with a rationale each, from the findings, features and recommendation.',
  params: z.object({
    findingsStage: StageRef.default('classify'),
    clinicalStage: z.string().default('note'),
    recommendStage: z.string().default('recommend'),
  }).strict(),
  output: z.object({ tableVersion: z.string(), codes: z.array(z.string()) }),
  async run(ctx) {
    const classify = optionalOutput(ctx, ctx.params.findingsStage, ClassifyOutput);
    const clinical = optionalOutput(ctx, ctx.params.clinicalStage, ClinicalFeatures);
    const recommended = optionalOutput(ctx, ctx.params.recommendStage, z.object({ recommendation: Recommendation }));
    const billing = suggestBilling({
      findings: Object.entries(classify?.probabilities ?? {}).map(([code, probability]) => ({ code, probability })),
      clinical,
      recommendation: recommended?.recommendation,
    });
    return { data: { tableVersion: billing.tableVersion, codes: billing.items.map((i) => `${i.system}:${i.code}`) }, report: { billing } };
  },
});
