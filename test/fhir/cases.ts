import { createHash } from 'node:crypto';
import { ERROR_CODES } from '../../src/core/errors.ts';
import { ESCALATE_DISPLAY } from '../../src/core/report.ts';
import type { CaseResult, ModelRef } from '../../src/core/result.ts';

// Synthetic case results for the FHIR mapper tests. Hashes are SHA-256 of fixed strings so the golden
// bundles are stable; a patient-like name is planted where PHI could hide (object keys, error messages,
// what the note parser read, abstention reasons, a provider's failure text).

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
    progress: [],
    detection: null,

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
    progress: [],
    detection: null,

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
    progress: [],
    detection: null,

    clinical: null,
    recommendation: null,
    explanations: { shap: [], heatmaps: [] },
    llm: null,
    billing: null,
    error: null,
  };
}

export const IMAGE_CLASSIFIER: ModelRef = {
  name: 'demo-tissue-classifier',
  version: '1.0.0',
  kind: 'onnx',
  sha256: sha256('demo-tissue-classifier 1.0.0 artifact'),
};

export const TREATMENT_RECOMMENDER: ModelRef = {
  name: 'demo-treatment-recommender',
  version: '1.0.0',
  kind: 'xgboost',
  sha256: sha256('demo-treatment-recommender 1.0.0 artifact'),
};

const RECOMMENDED_CASE_ID = '5e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b';
const ABSTAINED_CASE_ID = '9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d';

const TREATMENT_STAGES = [
  ['validate', 'image.validate'],
  ['quality', 'image.quality'],
  ['classify', 'model.classify'],
  ['note', 'clinical.note'],
  ['recommend', 'model.recommend'],
  ['llm', 'llm.recommend'],
  ['billing', 'billing.suggest'],
] as const;

/** The stages of pipelines/image-treatment.yaml, 10 ms apart on the given day. */
function treatmentTimings(day: string): CaseResult['timings'] {
  return TREATMENT_STAGES.map(([stage, uses], i) => ({
    stage,
    uses,
    status: 'succeeded',
    attempts: 1,
    durationMs: 5,
    startedAt: `${day}T08:15:00.${100 + i * 10}Z`,
    finishedAt: `${day}T08:15:00.${105 + i * 10}Z`,
  }));
}

/**
 * (d) Image + note → treatment recommendation, with SHAP values, a CAM heatmap, language-model text and
 * billing suggestions. The patient's name is planted in what the note parser read (a span and an
 * issue), which must stay out of the bundle.
 */
export function recommendedCase(): CaseResult {
  const id = RECOMMENDED_CASE_ID;
  return {
    id,
    pipeline: 'image-treatment',
    status: 'succeeded',
    createdAt: '2025-04-02T08:15:00.000Z',
    updatedAt: '2025-04-02T08:15:00.412Z',
    completedAt: '2025-04-02T08:15:00.412Z',
    input: {
      objectKey: `inputs/2025/04/${PLANTED_PATIENT_NAME}/biopsy.png`,
      sha256: sha256('synthetic 96x96 biopsy png'),
      bytes: 20_480,
      mediaType: 'png',
      mimeType: 'image/png',
      width: 96,
      height: 96,
    },
    note: { objectKey: `cases/${id}/note`, sha256: sha256('synthetic clinical note'), format: 'text', bytes: 212 },
    findings: [
      { stage: 'classify', code: 'tumour-pattern', label: 'Tumour-like tissue pattern (synthetic demo)', probability: 0.91, model: IMAGE_CLASSIFIER },
      { stage: 'classify', code: 'benign-pattern', label: 'Benign-like tissue pattern (synthetic demo)', probability: 0.09, model: IMAGE_CLASSIFIER },
    ],
    models: [IMAGE_CLASSIFIER, TREATMENT_RECOMMENDER],
    timings: treatmentTimings('2025-04-02'),
    progress: [],
    detection: null,

    clinical: {
      values: { age: 67, sex: 'male', psa: 12.4, grade_group: 3, t_stage: 2.2, pct_positive_cores: 41.7, prior_treatment: false },
      spans: [
        { feature: 'age', start: 0, end: 28, text: `${PLANTED_PATIENT_NAME}, 67 years`, source: 'note' },
        { feature: 'psa', start: 41, end: 55, text: 'PSA 12.4 ng/mL', source: 'note' },
      ],
      issues: [{ code: 'UNKNOWN_FIELD', message: `"Referred by ${PLANTED_PATIENT_NAME}" is not a known clinical value` }],
    },
    recommendation: {
      status: 'recommended',
      code: 'local-therapy',
      display: 'Local therapy (radical prostatectomy or radiotherapy)',
      probability: 0.78,
      alternatives: [
        { code: 'active-surveillance', display: 'Active surveillance', probability: 0.15 },
        { code: 'systemic-therapy', display: 'Systemic therapy (e.g. androgen deprivation)', probability: 0.07 },
      ],
      model: TREATMENT_RECOMMENDER,
    },
    explanations: {
      shap: [{
        model: TREATMENT_RECOMMENDER.name,
        version: TREATMENT_RECOMMENDER.version,
        output: 'local-therapy',
        bias: -0.21,
        contributions: [
          { feature: 'image_tumour_probability', value: 0.91, contribution: 0.62 },
          { feature: 'age', value: 67, contribution: 0.08 },
          { feature: 'psa', value: 12.4, contribution: 0.44 },
          { feature: 'grade_group', value: 3, contribution: 0.71 },
          { feature: 't_stage', value: 2.2, contribution: 0.19 },
          { feature: 'pct_positive_cores', value: 41.7, contribution: 0.12 },
          { feature: 'prior_treatment', value: 0, contribution: -0.03 },
        ],
        space: 'margin',
      }],
      heatmaps: [{
        model: IMAGE_CLASSIFIER.name,
        label: 'tumour-pattern',
        method: 'cam',
        objectKey: `cases/${id}/heatmap-classify-tumour-pattern.png`,
        width: 96,
        height: 96,
      }],
    },
    llm: {
      provider: 'openai',
      model: 'gpt-4o-mini-2024-07-18',
      prompt: { name: 'treatment-recommendation', version: 1, label: 'production' },
      tokens: { prompt: 812, completion: 264 },
      latencyMs: 1840.5,
      fallback: false,
      output: {
        summary: 'Tumour-like tissue pattern at 0.91 with PSA 12.4 ng/mL and grade group 3 is consistent with intermediate-risk disease; the recommender favours local therapy.',
        differentials: [{ diagnosis: 'Prostatic adenocarcinoma, grade group 3', rationale: 'Tumour-like pattern at 0.91 and grade group 3.' }],
        followUpTests: [{ test: 'Multiparametric MRI of the prostate', rationale: 'Local staging before local therapy.' }],
        treatmentConsiderations: [
          { consideration: 'Local therapy (radical prostatectomy or radiotherapy)', rationale: 'Recommended with probability 0.78; a clinician decides.' },
          { consideration: 'Alternative: Active surveillance', rationale: 'Probability 0.15.' },
        ],
      },
    },
    billing: {
      suggestionsOnly: true,
      tableVersion: 'dxflow-billing-2025.1',
      items: [
        { system: 'ICD-10-CM', code: 'C61', display: 'Malignant neoplasm of prostate', rationale: 'Tumour-like tissue pattern on the biopsy image with grade group 3.', basedOn: ['tumour-pattern', 'grade_group'] },
        { system: 'CPT', code: '88305', display: 'Surgical pathology, level IV', rationale: 'Microscopic examination of a prostate needle biopsy.', basedOn: ['tumour-pattern'] },
      ],
    },
    error: null,
  };
}

/** What the abstained case's recommender would have said; the bundle must never present it as the answer. */
export const WITHHELD = [
  { code: 'local-therapy', display: 'Local therapy (radical prostatectomy or radiotherapy)', probability: 0.412 },
  { code: 'active-surveillance', display: 'Active surveillance', probability: 0.355 },
  { code: 'systemic-therapy', display: 'Systemic therapy (e.g. androgen deprivation)', probability: 0.233 },
];

/**
 * (e) The recommender abstained: PSA unreadable, an uncertain image and close classes. The language
 * model failed and the offline rules wrote the text. The name is planted in the parser's issue and the
 * reason message that quotes it, and in the provider's failure text.
 */
export function abstainedCase(): CaseResult {
  const id = ABSTAINED_CASE_ID;
  return {
    id,
    pipeline: 'image-treatment',
    status: 'succeeded',
    createdAt: '2025-04-03T08:15:00.000Z',
    updatedAt: '2025-04-03T08:15:00.377Z',
    completedAt: '2025-04-03T08:15:00.377Z',
    input: {
      objectKey: `inputs/2025/04/${PLANTED_PATIENT_NAME}/biopsy-2.png`,
      sha256: sha256('synthetic 96x96 uncertain biopsy png'),
      bytes: 19_876,
      mediaType: 'png',
      mimeType: 'image/png',
      width: 96,
      height: 96,
    },
    note: { objectKey: `cases/${id}/note`, sha256: sha256('synthetic clinical note with unreadable PSA'), format: 'text', bytes: 187 },
    findings: [
      { stage: 'classify', code: 'tumour-pattern', label: 'Tumour-like tissue pattern (synthetic demo)', probability: 0.55, model: IMAGE_CLASSIFIER },
      { stage: 'classify', code: 'benign-pattern', label: 'Benign-like tissue pattern (synthetic demo)', probability: 0.45, model: IMAGE_CLASSIFIER },
    ],
    models: [IMAGE_CLASSIFIER, TREATMENT_RECOMMENDER],
    timings: treatmentTimings('2025-04-03'),
    progress: [],
    detection: null,

    clinical: {
      values: { age: 71, sex: 'male', psa: null, grade_group: 2, t_stage: 1.3, pct_positive_cores: 25, prior_treatment: false },
      spans: [{ feature: 'age', start: 0, end: 28, text: `${PLANTED_PATIENT_NAME}, 71 years`, source: 'note' }],
      issues: [{ code: 'UNPARSEABLE', feature: 'psa', message: `PSA "see ${PLANTED_PATIENT_NAME}'s letter" is not a number` }],
    },
    recommendation: {
      status: 'abstained',
      display: ESCALATE_DISPLAY,
      reasons: [
        { code: 'FEATURE_UNPARSEABLE', feature: 'psa', message: `PSA "see ${PLANTED_PATIENT_NAME}'s letter" is not a number` },
        { code: 'LOW_IMAGE_CONFIDENCE', message: 'The image classifier\'s top probability 0.550 is below its threshold 0.6' },
        { code: 'LOW_CONFIDENCE', message: 'The top class local-therapy has probability 0.412, below 0.6' },
      ],
      withheld: WITHHELD,
      model: TREATMENT_RECOMMENDER,
    },
    explanations: {
      shap: [{
        model: TREATMENT_RECOMMENDER.name,
        version: TREATMENT_RECOMMENDER.version,
        output: 'local-therapy',
        bias: -0.21,
        contributions: [
          { feature: 'image_tumour_probability', value: 0.55, contribution: 0.11 },
          { feature: 'age', value: 71, contribution: 0.05 },
          { feature: 'psa', value: null, contribution: -0.02 },
          { feature: 'grade_group', value: 2, contribution: 0.09 },
          { feature: 't_stage', value: 1.3, contribution: -0.14 },
          { feature: 'pct_positive_cores', value: 25, contribution: 0.01 },
          { feature: 'prior_treatment', value: 0, contribution: 0 },
        ],
        space: 'margin',
      }],
      heatmaps: [],
    },
    llm: {
      provider: 'offline',
      model: 'dxflow-rules-1',
      prompt: { name: 'treatment-recommendation', version: 1, label: 'production' },
      tokens: null,
      latencyMs: 0.4,
      fallback: true,
      fallbackReason: `openai model "gpt-4o-mini" failed: LLM_UNAVAILABLE: upstream echoed "${PLANTED_PATIENT_NAME}"`,
      output: {
        summary: 'Image findings: Tumour-like tissue pattern (synthetic demo) (55%), Benign-like tissue pattern (synthetic demo) (45%). ' +
          'The recommender gave no recommendation and the case should be escalated to a specialist. Missing clinical values: psa. ' +
          'Produced by dxflow\'s offline rules from the structured result, not by a language model; for review by a clinician.',
        differentials: [
          { diagnosis: 'Tumour-like tissue pattern (synthetic demo)', rationale: 'Image model probability 0.55, rank 1 of 2 findings.' },
          { diagnosis: 'Benign-like tissue pattern (synthetic demo)', rationale: 'Image model probability 0.45, rank 2 of 2 findings.' },
        ],
        followUpTests: [
          { test: 'Record psa', rationale: 'psa is missing from the clinical note.' },
          { test: 'Specialist review of the images and the note', rationale: 'The image classifier is not confident enough.' },
        ],
        treatmentConsiderations: [{ consideration: 'No treatment recommendation: escalate to a specialist', rationale: 'The recommender abstained.' }],
      },
    },
    billing: null,
    error: null,
  };
}
