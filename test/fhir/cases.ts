import { createHash } from 'node:crypto';
import { ERROR_CODES } from '../../src/core/errors.ts';
import type { CaseResult, ModelRef } from '../../src/core/result.ts';

// Synthetic case results for the FHIR mapper tests. Hashes are SHA-256 of fixed strings so the golden
// bundle is stable; a patient-like name is planted where PHI could hide (object key, error message).

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export const PLANTED_PATIENT_NAME = 'Jane Q. Doe-Sentinel';

export const TISSUE_CLASSIFIER: ModelRef = {
  name: 'demo-tissue-classifier',
  version: '1.2.0',
  kind: 'onnx',
  sha256: sha256('demo-tissue-classifier 1.2.0 artifact'),
};

export const TILE_SCORER: ModelRef = {
  name: 'demo-tile-scorer',
  version: '0.4.1',
  kind: 'onnx',
  sha256: sha256('demo-tile-scorer 0.4.1 artifact'),
};

export const RISK_MODEL: ModelRef = {
  name: 'demo-prostate-risk',
  version: '2.0.0',
  kind: 'xgboost',
  sha256: sha256('demo-prostate-risk 2.0.0 artifact'),
};

/** (a) Succeeded, two findings from one model. */
export function succeededCase(): CaseResult {
  return {
    id: '7f3c9a2e-5b1d-4e8f-a6c0-1d2e3f4a5b6c',
    pipeline: 'image-classify',
    status: 'succeeded',
    createdAt: '2025-03-14T09:26:53.100Z',
    updatedAt: '2025-03-14T09:26:54.250Z',
    completedAt: '2025-03-14T09:26:54.250Z',
    input: {
      objectKey: `inputs/2025/03/${PLANTED_PATIENT_NAME}/tile.png`,
      sha256: sha256('synthetic 224x224 png'),
      bytes: 48213,
      mediaType: 'png',
      mimeType: 'image/png',
      width: 224,
      height: 224,
    },
    findings: [
      { stage: 'classify', code: 'TUM', label: 'Tumour epithelium', probability: 0.87, model: TISSUE_CLASSIFIER },
      { stage: 'classify', code: 'STR', label: 'Stroma', probability: 0.09, model: TISSUE_CLASSIFIER },
    ],
    models: [TISSUE_CLASSIFIER],
    timings: [
      { stage: 'validate', uses: 'image.validate', status: 'succeeded', attempts: 1, durationMs: 4.2, startedAt: '2025-03-14T09:26:54.200Z', finishedAt: '2025-03-14T09:26:54.204Z' },
      { stage: 'classify', uses: 'model.classify', status: 'succeeded', attempts: 1, durationMs: 13.7, startedAt: '2025-03-14T09:26:54.205Z', finishedAt: '2025-03-14T09:26:54.219Z' },
    ],
    note: null,
    clinical: null,
    recommendation: null,
    explanations: { shap: [], heatmaps: [] },
    llm: null,
    billing: null,
    error: null,
  };
}

/** (b) Failed while validating the input; no findings. The message quotes the file name, as real ones may. */
export function failedCase(): CaseResult {
  return {
    id: '0b8e4d6a-2c7f-4a19-8e3b-5f6a7b8c9d0e',
    pipeline: 'image-classify',
    status: 'failed',
    createdAt: '2025-03-14T10:01:07.000Z',
    updatedAt: '2025-03-14T10:01:07.420Z',
    completedAt: '2025-03-14T10:01:07.420Z',
    input: {
      objectKey: `inputs/2025/03/${PLANTED_PATIENT_NAME}/scan.png`,
      sha256: sha256('synthetic corrupt png'),
      bytes: 1024,
      mediaType: 'png',
      mimeType: 'image/png',
    },
    findings: [],
    models: [],
    timings: [{ stage: 'validate', uses: 'image.validate', status: 'failed', attempts: 1, durationMs: 1.1, startedAt: '2025-03-14T10:01:07.400Z', finishedAt: '2025-03-14T10:01:07.401Z' }],
    note: null,
    clinical: null,
    recommendation: null,
    explanations: { shap: [], heatmaps: [] },
    llm: null,
    billing: null,
    error: {
      code: 'CORRUPT_IMAGE',
      message: `The PNG "${PLANTED_PATIENT_NAME}.png" has an IDAT chunk whose CRC does not match.`,
      hint: ERROR_CODES.CORRUPT_IMAGE.hint,
      stage: 'validate',
    },
  };
}

/** (c) Findings from two models: a tile model and a gradient-boosted risk model. */
export function twoModelCase(): CaseResult {
  return {
    id: 'c2d4e6f8-0a1b-4c3d-8e5f-6a7b8c9d0e1f',
    pipeline: 'wsi-prognosis',
    status: 'succeeded',
    createdAt: '2025-03-15T07:00:00.000Z',
    updatedAt: '2025-03-15T07:04:31.900Z',
    completedAt: '2025-03-15T07:04:31.900Z',
    input: {
      objectKey: 'slides/2025/03/slide-0042.svs',
      sha256: sha256('synthetic svs slide'),
      bytes: 1_873_215_488,
      mediaType: 'tiff',
      mimeType: 'image/tiff',
      width: 98_304,
      height: 71_680,
    },
    findings: [
      { stage: 'tiles', code: 'TUMOUR_BURDEN', label: 'Tumour tile fraction', probability: 0.42, model: TILE_SCORER },
      { stage: 'risk', code: 'HIGH_RISK', label: 'High risk of progression', probability: 0.66, model: RISK_MODEL },
      { stage: 'risk', code: 'LOW_RISK', label: 'Low risk of progression', probability: 0.34, model: RISK_MODEL },
    ],
    models: [TILE_SCORER, RISK_MODEL],
    timings: [
      { stage: 'tiles', uses: 'wsi.tile-scores', status: 'succeeded', attempts: 1, durationMs: 241_000, startedAt: '2025-03-15T07:00:05.000Z', finishedAt: '2025-03-15T07:04:06.000Z' },
      { stage: 'risk', uses: 'model.xgboost', status: 'succeeded', attempts: 1, durationMs: 2.5, startedAt: '2025-03-15T07:04:31.000Z', finishedAt: '2025-03-15T07:04:31.003Z' },
    ],
    note: null,
    clinical: null,
    recommendation: null,
    explanations: { shap: [], heatmaps: [] },
    llm: null,
    billing: null,
    error: null,
  };
}
