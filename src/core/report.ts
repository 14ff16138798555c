import { z } from 'zod';
import { ModelRef } from './model-ref.ts';

// The explained part of a result (DESIGN.md §4): clinical features read from the note, the treatment
// recommendation or the escalation with its reasons, explanations (SHAP, heatmaps), the LLM
// recommendation with its prompt version, and billing-code suggestions. Stages contribute these parts;
// the case result merges them in stage order.

export const FeatureValue = z.union([z.number(), z.string(), z.boolean(), z.null()]);
export type FeatureValue = z.infer<typeof FeatureValue>;

export const FeatureSpan = z.object({
  feature: z.string(),
  /** Offsets in the note text (UTF-16 code units, end exclusive), or the JSON key for structured input. */
  start: z.number().int().nonnegative().optional(),
  end: z.number().int().nonnegative().optional(),
  key: z.string().optional(),
  /** The matched value expression only (e.g. "PSA 12.4 ng/mL"), never surrounding text. */
  text: z.string(),
  source: z.enum(['note', 'json']),
});
export type FeatureSpan = z.infer<typeof FeatureSpan>;

export const FeatureIssueCode = z.enum(['NO_NOTE', 'UNPARSEABLE', 'OUT_OF_RANGE', 'CONTRADICTORY', 'UNKNOWN_UNIT', 'UNKNOWN_FIELD']);
export type FeatureIssueCode = z.infer<typeof FeatureIssueCode>;

export const FeatureIssue = z.object({
  code: FeatureIssueCode,
  feature: z.string().optional(),
  message: z.string(),
});
export type FeatureIssue = z.infer<typeof FeatureIssue>;

export const ClinicalFeatures = z.object({
  /** Normalised values by feature name; null means missing (never silently zero). */
  values: z.record(z.string(), FeatureValue),
  spans: z.array(FeatureSpan),
  issues: z.array(FeatureIssue),
});
export type ClinicalFeatures = z.infer<typeof ClinicalFeatures>;

export const AbstainReasonCode = z.enum([
  'NO_CLINICAL_NOTE', 'FEATURE_MISSING', 'FEATURE_OUT_OF_RANGE', 'FEATURE_CONTRADICTORY', 'FEATURE_UNPARSEABLE',
  'LOW_IMAGE_QUALITY', 'LOW_IMAGE_CONFIDENCE', 'LOW_CONFIDENCE',
]);
export type AbstainReasonCode = z.infer<typeof AbstainReasonCode>;

export const AbstainReason = z.object({ code: AbstainReasonCode, message: z.string(), feature: z.string().optional() });
export type AbstainReason = z.infer<typeof AbstainReason>;

export const ESCALATE_DISPLAY = 'No recommendation — escalate to specialist';

const ClassProbability = z.object({ code: z.string(), display: z.string(), probability: z.number().min(0).max(1) });

export const Recommendation = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('recommended'),
    code: z.string(),
    display: z.string(),
    probability: z.number().min(0).max(1),
    alternatives: z.array(ClassProbability),
    model: ModelRef,
  }),
  z.object({
    status: z.literal('abstained'),
    display: z.literal(ESCALATE_DISPLAY),
    reasons: z.array(AbstainReason).min(1),
    /** What the model would have said, kept for audit; never presented as the answer. */
    withheld: z.array(ClassProbability).optional(),
    model: ModelRef.optional(),
  }),
]);
export type Recommendation = z.infer<typeof Recommendation>;

export const ShapExplanation = z.object({
  model: z.string(),
  version: z.string(),
  /** The output explained: the recommended class code (or "value" for regression). */
  output: z.string(),
  /** Expected model output (margin space) before any feature is known. */
  bias: z.number(),
  contributions: z.array(z.object({ feature: z.string(), value: z.number().nullable(), contribution: z.number() })),
  /** "margin": log-odds / raw score, as XGBoost's pred_contribs. */
  space: z.literal('margin'),
});
export type ShapExplanation = z.infer<typeof ShapExplanation>;

export const Heatmap = z.object({
  model: z.string(),
  label: z.string(),
  /** cam and grad-cam: class activation maps of an image; tile-scores: one cell per scored slide tile. */
  method: z.enum(['cam', 'grad-cam', 'tile-scores']),
  /** Object-store key of the PNG overlay. */
  objectKey: z.string(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  /**
   * Slides only: the level-0 rectangle the PNG covers, anchored at the slide's top-left corner (the
   * tile grid; strips narrower than a tile at the right and bottom are outside it).
   */
  slideRegion: z.object({ width: z.number().int().positive(), height: z.number().int().positive() }).optional(),
});
export type Heatmap = z.infer<typeof Heatmap>;

export const LlmOutput = z.object({
  summary: z.string().min(1).max(2000),
  differentials: z.array(z.object({ diagnosis: z.string().min(1), rationale: z.string().min(1) })).max(10),
  followUpTests: z.array(z.object({ test: z.string().min(1), rationale: z.string().min(1) })).max(10),
  treatmentConsiderations: z.array(z.object({ consideration: z.string().min(1), rationale: z.string().min(1) })).max(10),
});
export type LlmOutput = z.infer<typeof LlmOutput>;

export const LlmRecommendation = z.object({
  provider: z.string(),
  model: z.string(),
  prompt: z.object({ name: z.string(), version: z.number().int().positive(), label: z.string().nullable() }),
  tokens: z.object({ prompt: z.number().int().nonnegative(), completion: z.number().int().nonnegative() }).nullable(),
  latencyMs: z.number().nonnegative(),
  /** True when the output is the offline rule-based fallback because the configured provider failed. */
  fallback: z.boolean(),
  fallbackReason: z.string().optional(),
  output: LlmOutput,
});
export type LlmRecommendation = z.infer<typeof LlmRecommendation>;

export const BillingSuggestion = z.object({
  system: z.enum(['ICD-10-CM', 'CPT']),
  code: z.string(),
  display: z.string(),
  rationale: z.string(),
  /** Finding, feature or recommendation codes the suggestion was derived from. */
  basedOn: z.array(z.string()),
});
export type BillingSuggestion = z.infer<typeof BillingSuggestion>;

export const Billing = z.object({
  /** Always true: codes are suggestions for a human coder, never submitted claims. */
  suggestionsOnly: z.literal(true),
  tableVersion: z.string(),
  items: z.array(BillingSuggestion),
});
export type Billing = z.infer<typeof Billing>;

/** What a stage may contribute to the result; merged across stages in order. */
const Box = z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() });

/** What an object detector found on the image, and the stored crop of the best detection. */
export const DetectionReport = z.object({
  model: z.string(),
  version: z.string(),
  image: z.object({ width: z.number().int(), height: z.number().int() }),
  /** Best first; boxes in image pixels. */
  detections: z.array(z.object({ label: z.string(), display: z.string(), score: z.number().min(0).max(1), box: Box })),
  /** The best detection's padded crop (served at /v1/cases/:id/files/<name>), or null when nothing was found. */
  crop: z.object({ objectKey: z.string(), width: z.number().int(), height: z.number().int(), region: Box }).nullable(),
});
export type DetectionReport = z.infer<typeof DetectionReport>;

export const ReportParts = z.object({
  detection: DetectionReport.optional(),
  clinical: ClinicalFeatures.optional(),
  recommendation: Recommendation.optional(),
  shap: z.array(ShapExplanation).optional(),
  heatmaps: z.array(Heatmap).optional(),
  llm: LlmRecommendation.optional(),
  billing: Billing.optional(),
});
export type ReportParts = z.infer<typeof ReportParts>;
