import { z } from 'zod';

// The result contract (DESIGN.md §4). These schemas are also the API response allowlists: nothing that
// is not listed here (PHI from metadata, raw pixels) is ever serialised.

export const MediaType = z.enum(['png', 'jpeg', 'tiff', 'dicom']);
export type MediaType = z.infer<typeof MediaType>;

export const MEDIA_MIME: Record<MediaType, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  tiff: 'image/tiff',
  dicom: 'application/dicom',
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

export const ModelRef = z.object({
  name: z.string(),
  version: z.string(),
  kind: z.string(),
  sha256: z.string(),
});
export type ModelRef = z.infer<typeof ModelRef>;

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

export const CaseResult = z.object({
  id: z.string(),
  pipeline: z.string(),
  status: CaseStatus,
  createdAt: z.string(),
  updatedAt: z.string(),
  completedAt: z.string().nullable(),
  input: InputRecord.nullable(),
  findings: z.array(Finding),
  models: z.array(ModelRef),
  timings: z.array(StageTiming),
  error: CaseError.nullable(),
});
export type CaseResult = z.infer<typeof CaseResult>;
