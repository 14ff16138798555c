import type { BillingSuggestion } from '../core/report.ts';

// The billing-code suggestion table for the prostate-biopsy pipelines, version dxflow-billing-2026.1.
// Small on purpose: each row is a code whose meaning was checked against its code set and a condition
// under which a human coder would consider it. Rows are data: changing one is a new table version, so
// a stored result can always be traced to the table that produced it.
//
// Code sets: ICD-10-CM FY2026 (CDC/NCHS, in effect from 1 October 2025), whose titles are public domain
// and quoted exactly; CPT 2026 (American Medical Association), whose descriptors are licensed, so the
// displays below are short paraphrases that keep the meaning, not the AMA text.
//
// Deliberately absent:
//   - no diagnosis code for a benign-looking image. N40.0 (benign prostatic hyperplasia) and N42.9
//     (disorder of prostate, unspecified) are diagnoses a pathologist makes; "the classifier saw no
//     tumour pattern" is neither, and the encounter is then coded from its reason (e.g. R97.20).
//   - no HCPCS Level II codes (G0416, drug J-codes): the result schema carries ICD-10-CM and CPT only;
//     rationales mention G0416 where Medicare uses it instead of CPT.

export const BILLING_TABLE_VERSION = 'dxflow-billing-2026.1';

export type BillingCondition =
  /** An image finding with at least this probability. */
  | { kind: 'finding'; codes: readonly string[]; minProbability: number }
  /** A numeric clinical feature above a threshold, unless a boolean feature is true. */
  | { kind: 'feature-above'; feature: string; above: number; unit: string; unlessTrue?: string }
  /** A clinical feature with a value. */
  | { kind: 'feature-present'; feature: string }
  /** A treatment the recommender recommended (never one it abstained on). */
  | { kind: 'recommendation'; code: string };

export interface BillingRow {
  when: BillingCondition;
  system: BillingSuggestion['system'];
  code: string;
  display: string;
  /** Why a coder would consider the code, and what must be true before it is used. */
  rationale: string;
}

export interface BillingTable {
  version: string;
  rows: readonly BillingRow[];
}

/** Tumour-pattern probability from which C61 is suggested (for confirmation, never as a diagnosis). */
export const TUMOUR_SUGGESTION_THRESHOLD = 0.5;
/** The conventional total-PSA cut-off for "elevated"; age-specific ranges are the clinician's call. */
export const ELEVATED_PSA_NG_ML = 4;

// Rows are in output order: diagnoses (ICD-10-CM) before procedures (CPT), each in clinical order.
export const BILLING_CODES_V1: BillingTable = {
  version: BILLING_TABLE_VERSION,
  rows: [
    {
      when: { kind: 'finding', codes: ['tumour-pattern'], minProbability: TUMOUR_SUGGESTION_THRESHOLD },
      system: 'ICD-10-CM',
      code: 'C61',
      display: 'Malignant neoplasm of prostate',
      rationale: 'Use only once a pathologist has confirmed carcinoma on the biopsy: an image model output is not a diagnosis, and outpatient coding does not code a suspected cancer as present (ICD-10-CM Official Guidelines, Section IV.H).',
    },
    {
      when: { kind: 'feature-above', feature: 'psa', above: ELEVATED_PSA_NG_ML, unit: 'ng/mL', unlessTrue: 'prior_treatment' },
      system: 'ICD-10-CM',
      code: 'R97.20',
      display: 'Elevated prostate specific antigen [PSA]',
      rationale: 'A sign code, for the encounter while no cancer is confirmed (Section I.B.4); drop it when C61 is confirmed, since signs routinely part of a confirmed disease are not coded in addition (Section I.B.5). After prostate cancer treatment a rising PSA is R97.21 instead, which needs the trend and is not suggested here.',
    },
    {
      when: { kind: 'finding', codes: ['tumour-pattern', 'benign-pattern'], minProbability: 0 },
      system: 'CPT',
      code: '88305',
      display: 'Surgical pathology, gross and microscopic examination, level IV',
      rationale: 'Prostate needle biopsy is a level IV surgical pathology specimen; one unit per separately submitted specimen (core or site). Medicare claims report prostate needle biopsy pathology with HCPCS G0416 instead, whatever the number of specimens.',
    },
    {
      when: { kind: 'feature-present', feature: 'psa' },
      system: 'CPT',
      code: '84153',
      display: 'Prostate specific antigen (PSA), total',
      rationale: 'Only if the PSA in the note was measured by this laboratory for this encounter; a value copied from an earlier report is not billed again.',
    },
    {
      when: { kind: 'recommendation', code: 'active-surveillance' },
      system: 'CPT',
      code: '84153',
      display: 'Prostate specific antigen (PSA), total',
      rationale: 'Active surveillance monitors total PSA at intervals; code each measurement when it is done.',
    },
    {
      when: { kind: 'recommendation', code: 'active-surveillance' },
      system: 'CPT',
      code: '55700',
      display: 'Prostate biopsy, needle or punch, single or multiple, any approach',
      rationale: 'Active surveillance includes a confirmatory or repeat biopsy; code it only when it is performed.',
    },
    {
      when: { kind: 'recommendation', code: 'local-therapy' },
      system: 'CPT',
      code: '55866',
      display: 'Laparoscopic radical retropubic prostatectomy, including nerve sparing and robotic assistance when performed',
      rationale: 'If local therapy is a (robot-assisted) laparoscopic radical prostatectomy; an open retropubic operation is 55840 instead.',
    },
    {
      when: { kind: 'recommendation', code: 'local-therapy' },
      system: 'CPT',
      code: '77427',
      display: 'Radiation treatment management, 5 treatments',
      rationale: 'If local therapy is external-beam radiotherapy: one unit per five fractions delivered, alongside the planning and delivery codes the radiation oncology team reports.',
    },
    {
      when: { kind: 'recommendation', code: 'systemic-therapy' },
      system: 'CPT',
      code: '96402',
      display: 'Chemotherapy administration, subcutaneous or intramuscular; hormonal anti-neoplastic',
      rationale: 'If systemic therapy is androgen deprivation by injection (e.g. leuprolide, goserelin, degarelix); the drug itself is billed with its HCPCS J-code.',
    },
    {
      when: { kind: 'recommendation', code: 'systemic-therapy' },
      system: 'CPT',
      code: '96413',
      display: 'Chemotherapy administration, intravenous infusion, up to 1 hour, single or initial drug',
      rationale: 'If systemic therapy includes intravenous chemotherapy (e.g. docetaxel); each additional hour is 96415.',
    },
  ],
};
