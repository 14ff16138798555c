import type { Coding } from '@medplum/fhirtypes';
import { ERROR_CODES, type ErrorCode } from '../core/errors.ts';
import type { AbstainReasonCode, BillingSuggestion } from '../core/report.ts';

// Code systems and identifier systems used by the FHIR mappers. dxflow's own systems are URNs under
// `urn:dxflow:`: they name concepts that only dxflow defines (case ids, finding codes from model
// manifests, error codes), so no external terminology applies to them.

export const DXFLOW_SYSTEM = {
  /** Case id (Identifier.system of the DiagnosticReport). */
  case: 'urn:dxflow:case',
  /** Finding codes as declared in the producing model's manifest labels. */
  finding: 'urn:dxflow:finding',
  /** Pipeline names (files under pipelines/). */
  pipeline: 'urn:dxflow:pipeline',
  /** sha256 of a model artifact, as pinned in its manifest. */
  modelSha256: 'urn:dxflow:model-sha256',
  /** Model runtime kinds (onnx, xgboost, remote), plus `llm` and `rules` for the text generator. */
  modelKind: 'urn:dxflow:model-kind',
  /** sha256 of an analysed input object. */
  inputSha256: 'urn:dxflow:input-sha256',
  /** sha256 of the clinical note object (the note itself never leaves the object store). */
  noteSha256: 'urn:dxflow:note-sha256',
  /** AppError codes (src/core/errors.ts). */
  error: 'urn:dxflow:error',
  /** The parts of a dxflow report that no external terminology names: REPORT_PART below. */
  reportPart: 'urn:dxflow:report-part',
  /** Treatment classes, as declared in the recommender manifest's output labels. */
  recommendation: 'urn:dxflow:recommendation',
  /** Why the recommender abstained (AbstainReasonCode in src/core/report.ts). */
  abstainReason: 'urn:dxflow:abstain-reason',
  /** An output label of a model, named without claiming it is a finding or a recommendation. */
  modelOutput: 'urn:dxflow:model-output',
  /** An input feature of a model, as named in its manifest. */
  modelFeature: 'urn:dxflow:model-feature',
  /** Prompt versions in the prompt registry, as `<name>.v<version>` (the file names under prompts/). */
  prompt: 'urn:dxflow:prompt',
} as const;

export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';
/** HL7 v2 table 0074, Diagnostic Service Section ID: the example binding of DiagnosticReport.category. */
export const V2_DIAGNOSTIC_SERVICE_SECTION = 'http://terminology.hl7.org/CodeSystem/v2-0074';
export const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
export const PROVENANCE_PARTICIPANT_TYPE = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';
export const V3_DATA_OPERATION = 'http://terminology.hl7.org/CodeSystem/v3-DataOperation';
/** R4 media-type code system (image | video | audio), the extensible binding of Media.type. */
export const MEDIA_TYPE = 'http://terminology.hl7.org/CodeSystem/media-type';

// Billing code systems by the URIs FHIR R4 assigns to external code systems (terminologies-systems.html):
// ICD-10-CM and the AMA's CPT.
export const BILLING_CODE_SYSTEM: Readonly<Record<BillingSuggestion['system'], string>> = {
  'ICD-10-CM': 'http://hl7.org/fhir/sid/icd-10-cm',
  CPT: 'http://www.ama-assn.org/go/cpt',
};

/** Codes of DXFLOW_SYSTEM.reportPart with their displays. */
export const REPORT_PART = {
  'treatment-recommendation': 'Treatment recommendation',
  'no-recommendation': 'No recommendation — escalate to specialist',
  'shap-contributions': 'SHAP feature contributions',
  'shap-bias': 'SHAP expected model output (bias)',
  'shap-output': 'Model output explained',
  'llm-recommendation': 'Generated clinical summary and considerations',
  'differential-diagnosis': 'Differential diagnosis to consider',
  'follow-up-test': 'Follow-up test to consider',
  'treatment-consideration': 'Treatment consideration',
  'billing-code-suggestion': 'Billing code suggestion',
} as const;
export type ReportPartCode = keyof typeof REPORT_PART;

export function reportPartCoding(code: ReportPartCode): Coding {
  return { system: DXFLOW_SYSTEM.reportPart, code, display: REPORT_PART[code] };
}

/**
 * Displays of the abstention reasons. The bundle states these fixed texts, never the reason's message:
 * a message may quote what the note parser read (and names the withheld class for LOW_CONFIDENCE).
 * A Record over the enum, so a new reason code does not compile until it has a display here.
 */
export const ABSTAIN_REASON: Readonly<Record<AbstainReasonCode, string>> = {
  NO_CLINICAL_NOTE: 'No clinical note',
  FEATURE_MISSING: 'Required clinical value missing',
  FEATURE_OUT_OF_RANGE: 'Clinical value outside the range the model was trained on',
  FEATURE_CONTRADICTORY: 'Contradictory clinical values',
  FEATURE_UNPARSEABLE: 'Clinical value could not be read',
  LOW_IMAGE_QUALITY: 'Image quality too low',
  LOW_IMAGE_CONFIDENCE: 'Image classifier not confident enough',
  LOW_CONFIDENCE: 'Recommender not confident enough',
};

/**
 * The provider name of dxflow's offline rules (src/llm/providers/offline.ts), whose text is not from a
 * language model and must not be labelled as such. Repeated here because `fhir` depends on `core` only;
 * a test checks that the two agree.
 */
export const RULE_BASED_TEXT_PROVIDER = 'offline';

/** What kind of report a pipeline produces: the DiagnosticReport category and code, the Observation category. */
export interface ReportKind {
  category: Coding;
  /** LOINC report code; absent when no LOINC document type fits, and the report code is then text only. */
  loinc?: Coding;
  observationCategory?: Coding;
}

const PATHOLOGY: ReportKind = {
  category: { system: V2_DIAGNOSTIC_SERVICE_SECTION, code: 'PAT', display: 'Pathology (gross & histopath, not surgical)' },
  loinc: { system: LOINC, code: '11526-1', display: 'Pathology study' },
  // Pathology findings are laboratory observations in the R4 observation-category code system;
  // "imaging" is scoped there to radiology-type modalities.
  observationCategory: { system: OBSERVATION_CATEGORY, code: 'laboratory', display: 'Laboratory' },
};

const CLINICAL_PHOTOGRAPHY: ReportKind = {
  category: { system: V2_DIAGNOSTIC_SERVICE_SECTION, code: 'IMG', display: 'Diagnostic Imaging' },
  // No LOINC document type covers an automated triage of clinical photographs; a wrong LOINC code is
  // worse than none, so the report code stays text plus the dxflow pipeline coding.
  observationCategory: { system: OBSERVATION_CATEGORY, code: 'imaging', display: 'Imaging' },
};

/** For pipelines this table does not know: v2-0074 "OTH" says so honestly instead of guessing a section. */
export const UNKNOWN_REPORT_KIND: ReportKind = {
  category: { system: V2_DIAGNOSTIC_SERVICE_SECTION, code: 'OTH', display: 'Other' },
};

// Keyed by the shipped pipeline names (DESIGN.md §1 and pipelines/). A pipeline spec has no field that
// says what kind of report it produces, so user-written pipelines fall back to UNKNOWN_REPORT_KIND.
// A Map, not an object literal: pipeline names such as "constructor" must not find Object.prototype.
const REPORT_KIND_BY_PIPELINE: ReadonlyMap<string, ReportKind> = new Map([
  ['image-classify', PATHOLOGY], // the demo tissue classifier works on histology images
  ['wsi-prognosis', PATHOLOGY],
  // Its classifier is the same tissue classifier on a prostate biopsy image (pipelines/image-treatment.yaml).
  // A radiology pipeline would be IMG with LOINC 18748-4 "Diagnostic imaging study".
  ['image-treatment', PATHOLOGY],
  ['photo-triage', CLINICAL_PHOTOGRAPHY],
]);

export function reportKindFor(pipeline: string): ReportKind {
  return REPORT_KIND_BY_PIPELINE.get(pipeline) ?? UNKNOWN_REPORT_KIND;
}

/** Whether a stored error code is one of ours; codes recorded by older versions may no longer be. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
