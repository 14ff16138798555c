import { z } from 'zod';
import { ModelRef } from './model-ref.ts';
import { Billing, ClinicalFeatures, DetectionReport, Heatmap, LlmRecommendation, Recommendation, ShapExplanation } from './report.ts';

// The result contract (DESIGN.md §4). These schemas are also the API response allowlists: nothing that
// is not listed here (PHI from metadata, raw pixels) is ever serialised.

/** `slide`: a tiled, pyramidal whole-slide TIFF (SVS, BigTIFF), read in place and never decoded whole. */
export const MediaType = z.enum(['png', 'jpeg', 'tiff', 'dicom', 'slide']);
export type MediaType = z.infer<typeof MediaType>;

export const MEDIA_MIME: Record<MediaType, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  tiff: 'image/tiff',
  dicom: 'application/dicom',
  slide: 'image/tiff',
};

export const InputRecord = z.object({
  objectKey: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
  mediaType: MediaType,
  mimeType: z.string(),
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
});
export type InputRecord = z.infer<typeof InputRecord>;

export { ModelRef } from './model-ref.ts';

export const Finding = z.object({
  stage: z.string(),
  code: z.string(),
  label: z.string(),
  probability: z.number().min(0).max(1),
  model: ModelRef.optional(),
});
export type Finding = z.infer<typeof Finding>;

export const StageTiming = z.object({
  stage: z.string(),
  uses: z.string(),
  status: z.enum(['succeeded', 'failed', 'skipped']),
  attempts: z.number().int(),
  durationMs: z.number(),
  startedAt: z.string(),
  finishedAt: z.string(),
});
export type StageTiming = z.infer<typeof StageTiming>;

export const CaseStatus = z.enum(['queued', 'running', 'succeeded', 'failed']);
export type CaseStatus = z.infer<typeof CaseStatus>;

export const CaseError = z.object({
  code: z.string(),
  message: z.string(),
  hint: z.string(),
  stage: z.string().nullable(),
});
export type CaseError = z.infer<typeof CaseError>;

export const NoteRecord = z.object({
  objectKey: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  format: z.enum(['text', 'json']),
  bytes: z.number().int().nonnegative(),
});
export type NoteRecord = z.infer<typeof NoteRecord>;

/** Work of a fanned-out stage: tiles scored so far out of all tiles planned. */
export const StageProgress = z.object({
  stage: z.string(),
  tilesDone: z.number().int().nonnegative(),
  tilesTotal: z.number().int().nonnegative(),
  batchesDone: z.number().int().nonnegative(),
  batchesTotal: z.number().int().nonnegative(),
});
export type StageProgress = z.infer<typeof StageProgress>;

export const CaseResult = z.object({
  id: z.string(),
  pipeline: z.string(),
  status: CaseStatus,
  createdAt: z.string(),
  updatedAt: z.string(),
  completedAt: z.string().nullable(),
  input: InputRecord.nullable(),
  /** Where the clinical note is stored and its hash; the note itself is never part of a result. */
  note: NoteRecord.nullable(),
  findings: z.array(Finding),
  models: z.array(ModelRef),
  timings: z.array(StageTiming),
  progress: z.array(StageProgress),
  detection: DetectionReport.nullable(),
  clinical: ClinicalFeatures.nullable(),
  recommendation: Recommendation.nullable(),
  explanations: z.object({ shap: z.array(ShapExplanation), heatmaps: z.array(Heatmap) }),
  llm: LlmRecommendation.nullable(),
  billing: Billing.nullable(),
  error: CaseError.nullable(),
});
export type CaseResult = z.infer<typeof CaseResult>;
