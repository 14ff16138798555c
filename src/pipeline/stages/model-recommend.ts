import { z } from 'zod';
import { toModelRow } from '../../clinical/features.ts';
import { decideRecommendation, type ImageEvidence } from '../../clinical/policy.ts';
import { AppError } from '../../core/errors.ts';
import { ClinicalFeatures, Recommendation, type ShapExplanation } from '../../core/report.ts';
import type { ModelCatalog } from '../../models/catalog.ts';
import { classProbabilities } from '../../models/tabular.ts';
import { defineStage, type StageContext } from '../stage.ts';

const ImageOutput = z.object({
  probabilities: z.record(z.string(), z.number()),
  top: z.object({ code: z.string(), probability: z.number() }),
  minProbability: z.number().optional(),
});
const QualityOutput = z.object({ problems: z.array(z.string()) });
const NO_FEATURES: ClinicalFeatures = { values: {}, spans: [], issues: [] };

function earlier<T>(ctx: StageContext<unknown>, stageId: string, schema: z.ZodType<T>, what: string): T {
  if (!ctx.outputs.has(stageId)) {
    throw new AppError('PIPELINE_SPEC_INVALID', `Stage "${ctx.stageId}" reads ${what} from stage "${stageId}", which has not run before it`);
  }
  const parsed = schema.safeParse(ctx.outputs.get(stageId));
  if (!parsed.success) throw new AppError('PIPELINE_SPEC_INVALID', `Stage "${stageId}" does not produce ${what} for "${ctx.stageId}"`);
  return parsed.data;
}

/**
 * The treatment recommender: builds the model row from the image classifier's probabilities and the
 * note's features (as the manifest's `source`s say), predicts, explains the answer with exact TreeSHAP,
 * and applies the confidence policy — a recommendation, or an escalation with its reasons.
 */
export function createModelRecommendStage(deps: { models: ModelCatalog }) {
  return defineStage({
    name: 'model.recommend',
    description: 'Runs an XGBoost recommender on image probabilities and clinical features; SHAP values and the abstention policy.',
    params: z.object({
      model: z.string().min(1),
      imageStage: z.string().default('classify'),
      clinicalStage: z.string().default('note'),
      qualityStage: z.string().optional(),
    }).strict(),
    output: z.object({
      recommendation: Recommendation,
      probabilities: z.record(z.string(), z.number()),
      row: z.record(z.string(), z.number().nullable()),
    }),
    async run(ctx) {
      const tabular = await deps.models.tabular(ctx.params.model);
      const { manifest } = tabular;
      const image = earlier(ctx, ctx.params.imageStage, ImageOutput, 'image probabilities');
      const clinical = ctx.outputs.has(ctx.params.clinicalStage) ? earlier(ctx, ctx.params.clinicalStage, ClinicalFeatures, 'clinical features') : undefined;
      const quality = ctx.params.qualityStage ? earlier(ctx, ctx.params.qualityStage, QualityOutput, 'image quality') : undefined;

      const row = manifest.inputs.features.map((f): number | null => {
        const [kind, key = ''] = f.source.split(':');
        if (kind === 'image') {
          const p = image.probabilities[key];
          if (p === undefined) throw new AppError('PIPELINE_SPEC_INVALID', `${manifest.name} reads image:${key}, which stage "${ctx.params.imageStage}" does not output`);
          return p;
        }
        if (kind === 'clinical') return toModelRow(clinical ?? NO_FEATURES, [key])[0] ?? null;
        throw new AppError('PIPELINE_SPEC_INVALID', `${manifest.name}: feature source "${f.source}" cannot be filled inside a pipeline`);
      });

      const probabilities = classProbabilities(tabular, row);
      const evidence: ImageEvidence = {
        topProbability: image.top.probability,
        minProbability: image.minProbability ?? 0,
        qualityProblems: quality?.problems ?? [],
      };
      const recommendation = decideRecommendation({ manifest, model: tabular.ref, row, clinical, image: evidence, probabilities });

      // Explain the class the model ranks first, recommended or withheld: the clinician sees why the
      // model leaned that way even when the answer is escalated.
      const topIndex = probabilities.indexOf(Math.max(...probabilities));
      const groups = tabular.model.contributions(row);
      const group = groups.length === 1 ? groups[0] : groups[topIndex];
      if (!group) throw new AppError('INTERNAL', `${manifest.name}: no SHAP values for class ${topIndex}`);
      const explained = groups.length === 1 ? (manifest.outputs.labels[1]?.code ?? 'value') : (manifest.outputs.labels[topIndex]?.code ?? String(topIndex));
      const shap: ShapExplanation = {
        model: manifest.name,
        version: manifest.version,
        output: explained,
        bias: group[group.length - 1] ?? 0,
        contributions: manifest.inputs.features.map((f, i) => ({ feature: f.name, value: row[i] ?? null, contribution: group[i] ?? 0 })),
        space: 'margin',
      };
      return {
        data: {
          recommendation,
          probabilities: Object.fromEntries(manifest.outputs.labels.map((l, i) => [l.code, probabilities[i] ?? 0])),
          row: Object.fromEntries(manifest.inputs.features.map((f, i) => [f.name, row[i] ?? null])),
        },
        models: [tabular.ref],
        report: { recommendation, shap: [shap] },
      };
    },
  });
}
