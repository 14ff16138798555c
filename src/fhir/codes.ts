import type { Coding } from '@medplum/fhirtypes';
import { ERROR_CODES, type ErrorCode } from '../core/errors.ts';

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
  /** Model runtime kinds (onnx, xgboost, remote). */
  modelKind: 'urn:dxflow:model-kind',
  /** sha256 of an analysed input object. */
  inputSha256: 'urn:dxflow:input-sha256',
  /** AppError codes (src/core/errors.ts). */
  error: 'urn:dxflow:error',
} as const;

export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';
/** HL7 v2 table 0074, Diagnostic Service Section ID: the example binding of DiagnosticReport.category. */
export const V2_DIAGNOSTIC_SERVICE_SECTION = 'http://terminology.hl7.org/CodeSystem/v2-0074';
export const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
export const PROVENANCE_PARTICIPANT_TYPE = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';
export const V3_DATA_OPERATION = 'http://terminology.hl7.org/CodeSystem/v3-DataOperation';

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

const IMAGING: ReportKind = {
  category: { system: V2_DIAGNOSTIC_SERVICE_SECTION, code: 'IMG', display: 'Diagnostic Imaging' },
  loinc: { system: LOINC, code: '18748-4', display: 'Diagnostic imaging study' },
  observationCategory: { system: OBSERVATION_CATEGORY, code: 'imaging', display: 'Imaging' },
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
  ['image-treatment', IMAGING],
  ['photo-triage', CLINICAL_PHOTOGRAPHY],
]);

export function reportKindFor(pipeline: string): ReportKind {
  return REPORT_KIND_BY_PIPELINE.get(pipeline) ?? UNKNOWN_REPORT_KIND;
}

/** Whether a stored error code is one of ours; codes recorded by older versions may no longer be. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
