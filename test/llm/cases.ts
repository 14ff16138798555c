import { ESCALATE_DISPLAY, type Recommendation } from '../../src/core/report.ts';
import type { PromptInput } from '../../src/llm/render.ts';

// Synthetic, de-identified inputs for the LLM step: one case the recommender answered, one where it
// abstained, one pipeline without a recommender.

export const recommenderModel = { name: 'prostate-risk', version: '2.1.0', kind: 'xgboost', sha256: 'c'.repeat(64) };

export const recommended: PromptInput = {
  pipeline: 'wsi-prognosis',
  findings: [
    { code: 'benign', label: 'Benign tissue', probability: 0.0912 },
    { code: 'gleason-4', label: 'Gleason pattern 4', probability: 0.7431 },
    { code: 'gleason-3', label: 'Gleason pattern 3', probability: 0.1657 },
  ],
  features: { psa: 12.4, gradeGroup: 3, tStage: 'T2b', ageYears: 67, priorBiopsy: false, mriPirads: null },
  recommendation: {
    status: 'recommended',
    code: 'radical-prostatectomy',
    display: 'Radical prostatectomy',
    probability: 0.6823,
    alternatives: [
      { code: 'active-surveillance', display: 'Active surveillance', probability: 0.1102 },
      { code: 'radiotherapy', display: 'External beam radiotherapy', probability: 0.2075 },
    ],
    model: recommenderModel,
  },
};

/** An escalation as the clinical policy produces it (a core Recommendation, passed to prompts as it is). */
export const escalation: Extract<Recommendation, { status: 'abstained' }> = {
  status: 'abstained',
  display: ESCALATE_DISPLAY,
  reasons: [
    { code: 'FEATURE_MISSING', message: 'ageYears is missing from the note', feature: 'ageYears' },
    // Reason messages are free text and may quote the note; prompts use a fixed wording per code.
    { code: 'LOW_IMAGE_CONFIDENCE', message: 'quoted-note-text: top probability 0.48 < 0.60' },
  ],
  // What the model would have said; it must never reach a prompt.
  withheld: [{ code: 'withheld-excision-class', display: 'Withheld excision suggestion', probability: 0.51 }],
  model: recommenderModel,
};

export const abstained: PromptInput = {
  pipeline: 'image-treatment',
  findings: [
    { code: 'melanocytic-naevus', label: 'Melanocytic naevus', probability: 0.48 },
    { code: 'melanoma', label: 'Melanoma', probability: 0.44 },
  ],
  features: { lesionDiameterMm: 7.5, ageYears: null },
  recommendation: escalation,
};

export const noRecommender: PromptInput = {
  pipeline: 'photo-triage',
  findings: [{ code: 'eczema', label: 'Eczema', probability: 0.93 }],
  features: {},
  recommendation: null,
};

/** A valid LlmOutput a language model might answer with. */
export const modelAnswer = {
  summary: 'Gleason pattern 4 predominates on the slide; PSA 12.4 with grade group 3 supports intermediate risk. MRI PI-RADS is missing.',
  differentials: [{ diagnosis: 'Prostate adenocarcinoma, grade group 3', rationale: 'Gleason pattern 4 at 0.743 with pattern 3 present.' }],
  followUpTests: [{ test: 'Multiparametric prostate MRI', rationale: 'PI-RADS is missing and informs staging.' }],
  treatmentConsiderations: [{ consideration: 'Radical prostatectomy', rationale: 'Recommended at 0.682; radiotherapy is the main alternative.' }],
};
