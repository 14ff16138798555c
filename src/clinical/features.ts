import { AppError } from '../core/errors.ts';
import type { ClinicalFeatures } from '../core/report.ts';

// The clinical feature catalogue: every value the note parsers may produce, with its type, unit and the
// range a value must fall in to be used. Both parsers (free text and JSON) validate against this one
// list, the recommender's input row is built from it, and `values` in ClinicalFeatures always has one key
// per entry, in this order. PSA density is not here: it needs the prostate volume, which prostate-biopsy
// notes rarely state, and a half-filled feature would only teach the model that it is usually missing.

export interface FeatureDefinition {
  readonly name: string;
  /** How messages name the feature. */
  readonly label: string;
  readonly type: 'number' | 'integer' | 'boolean' | 'category';
  /** Human unit; null for counts, grades and flags. */
  readonly unit: string | null;
  /** UCUM code for FHIR Observation.valueQuantity, when the feature has a unit. */
  readonly ucum?: string;
  /** Inclusive valid range for numbers. */
  readonly min?: number;
  readonly max?: number;
  /** The only values allowed, when the scale has gaps (T categories). */
  readonly codes?: readonly number[];
  readonly categories?: readonly string[];
  /**
   * Two readings closer than this are the same statement, not a contradiction: a percentage computed
   * from "4/12 cores" (33.3) and the same percentage rounded in the note ("33%").
   */
  readonly agreement?: number;
  readonly description: string;
}

/**
 * Clinical T category (AJCC Cancer Staging Manual, 8th edition, prostate) as an ordinal number: the
 * category is the integer part and the subcategory adds tenths, so a < b < c stay ordered inside a
 * category and every T2 sorts above every T1. T4 has no subcategories in the 8th edition.
 */
export const T_STAGE_CODES = {
  T1: 1, T1a: 1.1, T1b: 1.2, T1c: 1.3,
  T2: 2, T2a: 2.1, T2b: 2.2, T2c: 2.3,
  T3: 3, T3a: 3.1, T3b: 3.2,
  T4: 4,
} as const satisfies Record<string, number>;

export const FEATURE_CATALOGUE = [
  {
    name: 'age', label: 'age', type: 'number', unit: 'years', ucum: 'a', min: 18, max: 110,
    description: 'Age of the patient in years.',
  },
  {
    name: 'sex', label: 'sex', type: 'category', unit: null, categories: ['male', 'female'],
    description: 'Sex as stated in the note.',
  },
  {
    name: 'psa', label: 'PSA', type: 'number', unit: 'ng/mL', ucum: 'ng/mL', min: 0, max: 10000,
    description: 'Total serum prostate-specific antigen in ng/mL (µg/L is the same quantity). A value without a unit is taken as ng/mL, the unit every laboratory reports total PSA in.',
  },
  {
    name: 'gleason_primary', label: 'Gleason primary pattern', type: 'integer', unit: null, min: 3, max: 5,
    description: 'Most common Gleason pattern. Patterns 1 and 2 are not assigned on needle biopsies (ISUP 2005 and 2014 consensus).',
  },
  {
    name: 'gleason_secondary', label: 'Gleason secondary pattern', type: 'integer', unit: null, min: 3, max: 5,
    description: 'Second most common (or highest-grade) Gleason pattern.',
  },
  {
    name: 'gleason_score', label: 'Gleason score', type: 'integer', unit: null, min: 6, max: 10,
    description: 'Gleason score, the sum of the primary and secondary patterns; derived from them when the note gives the patterns only.',
  },
  {
    name: 'grade_group', label: 'grade group', type: 'integer', unit: null, min: 1, max: 5,
    description: 'ISUP 2014 / WHO 2016 grade group; derived from the Gleason patterns or score when not stated (≤6 → 1, 3+4 → 2, 4+3 → 3, 8 → 4, 9–10 → 5).',
  },
  {
    name: 't_stage', label: 'T stage', type: 'number', unit: null, min: 1, max: 4, codes: Object.values(T_STAGE_CODES),
    description: 'Clinical T category (AJCC 8th edition) as an ordinal: T1 → 1, T1a → 1.1, T1b → 1.2, T1c → 1.3, T2 → 2, T2a → 2.1, T2b → 2.2, T2c → 2.3, T3 → 3, T3a → 3.1, T3b → 3.2, T4 → 4. Pathological stage (pT) is a different measurement and is not read.',
  },
  {
    name: 'pct_positive_cores', label: 'percentage of positive cores', type: 'number', unit: '%', ucum: '%', min: 0, max: 100, agreement: 0.5,
    description: 'Percentage of biopsy cores with cancer, from "4/12 cores" (rounded to one decimal) or a stated percentage.',
  },
  {
    name: 'prior_treatment', label: 'prior treatment', type: 'boolean', unit: null,
    description: 'True when the patient has had, or is on, prostate cancer management: prostatectomy, radiotherapy, androgen deprivation, focal or systemic therapy, active surveillance. False when the note says the patient is treatment-naive.',
  },
  {
    name: 'ecog', label: 'ECOG performance status', type: 'integer', unit: null, min: 0, max: 4,
    description: 'ECOG (= WHO/Zubrod) performance status; 5 (dead) is not a valid input.',
  },
  {
    name: 'metastasis', label: 'distant metastasis', type: 'boolean', unit: null,
    description: 'True for distant metastasis (M1, bone or visceral metastases, metastatic disease); false for M0 or an explicit "no evidence of metastatic disease". Regional node involvement (N1) is not M1.',
  },
] as const satisfies readonly FeatureDefinition[];

export type FeatureName = (typeof FEATURE_CATALOGUE)[number]['name'];

export const FEATURE_NAMES: readonly FeatureName[] = FEATURE_CATALOGUE.map((f) => f.name);

/**
 * The clinical inputs of the treatment recommender, in model-input order after the image probability:
 * the model reads ['image_tumour_probability', ...RECOMMENDER_FEATURES].
 */
export const RECOMMENDER_FEATURES = ['age', 'psa', 'grade_group', 't_stage', 'pct_positive_cores', 'prior_treatment'] as const satisfies readonly FeatureName[];

const BY_NAME: ReadonlyMap<string, FeatureDefinition> = new Map(FEATURE_CATALOGUE.map((f) => [f.name, f]));

export function featureDefinition(name: FeatureName): FeatureDefinition {
  const definition = BY_NAME.get(name);
  if (!definition) throw new Error(`No clinical feature named "${name}"`);
  return definition;
}

export function isFeatureName(name: string): name is FeatureName {
  return BY_NAME.has(name);
}

/**
 * The model input row for `names`: numbers as they are, booleans as 1/0, missing as null. A name
 * that is not a numeric catalogue feature is a manifest error, not a missing value.
 */
export function toModelRow(features: ClinicalFeatures, names: readonly string[]): (number | null)[] {
  return names.map((name) => {
    const definition = BY_NAME.get(name);
    if (!definition) {
      throw new AppError('MODEL_MANIFEST_INVALID', `The model reads clinical feature "${name}", which is not in the catalogue (${FEATURE_NAMES.join(', ')})`);
    }
    if (definition.type === 'category') {
      throw new AppError('MODEL_MANIFEST_INVALID', `The model reads clinical feature "${name}", a category with no numeric encoding; use a numeric or boolean feature`);
    }
    const value = features.values[name] ?? null;
    if (typeof value === 'boolean') return value ? 1 : 0;
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  });
}

/** "T2b" → 2.2; undefined for anything that is not an AJCC 8th edition prostate clinical T category. */
export function encodeTStage(category: string): number | undefined {
  return Object.hasOwn(T_STAGE_CODES, category) ? T_STAGE_CODES[category as keyof typeof T_STAGE_CODES] : undefined;
}

/** 2.2 → "T2b", for messages. */
export function describeTStage(code: number): string {
  const entry = Object.entries(T_STAGE_CODES).find(([, v]) => v === code);
  return entry ? entry[0] : String(code);
}

/**
 * ISUP 2014 grade group from the two Gleason patterns (Epstein et al., Am J Surg Pathol 2016;40:244):
 * the order of the patterns matters only for a score of 7. Patterns are 3–5 (checked by the caller).
 */
export function gradeGroupFromPatterns(primary: number, secondary: number): number {
  const score = primary + secondary;
  if (score === 7) return primary === 3 ? 2 : 3;
  return score <= 6 ? 1 : score === 8 ? 4 : 5;
}

/** Grade group from the score alone; undefined for 7, which is group 2 or 3 depending on the patterns. */
export function gradeGroupFromScore(score: number): number | undefined {
  if (score === 7) return undefined;
  return score <= 6 ? 1 : score === 8 ? 4 : 5;
}

/** Why a value cannot be used for `definition`, or undefined when it fits the catalogue. */
export function rangeProblem(definition: FeatureDefinition, value: number): string | undefined {
  if (definition.min !== undefined && definition.max !== undefined && (value < definition.min || value > definition.max)) {
    const unit = definition.unit === null ? '' : definition.unit === '%' ? '%' : ` ${definition.unit}`;
    return `is outside the valid range ${definition.min}–${definition.max}${unit}`;
  }
  return undefined;
}
