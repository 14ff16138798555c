import { AppError } from '../core/errors.ts';
import type { ClinicalFeatures, FeatureIssue } from '../core/report.ts';
import { encodeTStage, featureDefinition, isFeatureName, type FeatureName } from './features.ts';
import {
  gleasonObservations,
  observeNumber,
  parseDecimal,
  psaInNgPerMl,
  resolveFeatures,
  unparseable,
  type Evidence,
  type GleasonPart,
  type NumberReading,
  type Observation,
} from './observations.ts';

// Structured clinical note: a JSON object keyed by the catalogue feature names, e.g.
//   { "age": 68, "psa": { "value": 4.5, "unit": "ug/L" }, "gleason_primary": 3, "gleason_secondary": 4,
//     "t_stage": "cT2b", "prior_treatment": false }
// Values are validated exactly as the free-text parser validates them (same ranges, same Gleason and
// grade-group derivation, same contradiction rule). Numbers may come as numbers or as numeric strings,
// since EHR exports often quote them. A key that is not a feature is reported (UNKNOWN_FIELD) and
// otherwise ignored; null means "not recorded".

/** Unknown keys listed one by one before the rest are summed up in one issue. */
const MAX_UNKNOWN_LISTED = 20;
/** Longest value echoed back in a span or message. */
const MAX_SHOWN = 80;

function shown(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 1)}…` : text;
}

/** A value as quoted inside a message: text as it is, anything else as JSON. */
function quoted(value: unknown): string {
  return typeof value === 'string' && value.length <= MAX_SHOWN ? value : shown(value);
}

function evidenceOf(key: string, value: unknown): Evidence[] {
  return [{ key, text: shown(value), source: 'json' }];
}

function readNumber(value: unknown): NumberReading {
  if (typeof value === 'number') return Number.isFinite(value) ? { value } : { reason: 'is not a finite number' };
  if (typeof value === 'string' && value.length <= 40) return parseDecimal(value);
  return { reason: 'is not a number' };
}

function numberObservation(feature: FeatureName, key: string, value: unknown): Observation {
  const evidence = evidenceOf(key, value);
  const reading = readNumber(value);
  return 'value' in reading ? observeNumber(feature, reading.value, evidence) : unparseable(feature, quoted(value), reading.reason, evidence);
}

function psaObservation(key: string, value: unknown): Observation {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return numberObservation('psa', key, value);
  const evidence = evidenceOf(key, value);
  const { value: amount, unit } = value as { value?: unknown; unit?: unknown };
  const reading = readNumber(amount);
  if (!('value' in reading)) return unparseable('psa', quoted(amount), reading.reason, evidence);
  if (unit !== undefined && unit !== null && typeof unit !== 'string') return unparseable('psa', shown(value), 'has a unit that is not text', evidence);
  const psa = typeof unit === 'string' ? psaInNgPerMl(reading.value, unit) : reading.value;
  if (psa === undefined) {
    return { feature: 'psa', evidence, problem: { code: 'UNKNOWN_UNIT', message: `PSA ${shown(value)} is in '${String(unit)}', which is not a unit total PSA is reported in (ng/mL or µg/L)` } };
  }
  return observeNumber('psa', psa, evidence);
}

function tStageObservation(key: string, value: unknown): Observation {
  if (typeof value !== 'string') return numberObservation('t_stage', key, value);
  const evidence = evidenceOf(key, value);
  const category = /^c?(T[0-4X][a-e]?)$/.exec(value.trim())?.[1];
  const code = category === undefined ? undefined : encodeTStage(category);
  if (code !== undefined) return observeNumber('t_stage', code, evidence);
  if (/^[py]T/.test(value.trim())) return unparseable('t_stage', value, 'is a pathological or post-therapy stage; t_stage is the clinical stage', evidence);
  const numeric = readNumber(value);
  return 'value' in numeric ? observeNumber('t_stage', numeric.value, evidence) : unparseable('t_stage', value, 'is not a prostate T category (AJCC 8th edition)', evidence);
}

function booleanObservation(feature: FeatureName, key: string, value: unknown): Observation {
  const evidence = evidenceOf(key, value);
  return typeof value === 'boolean' ? { feature, value, evidence } : unparseable(feature, quoted(value), 'is not true or false', evidence);
}

function sexObservation(key: string, value: unknown): Observation {
  const evidence = evidenceOf(key, value);
  const normalised = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (normalised === 'male' || normalised === 'm') return { feature: 'sex', value: 'male', evidence };
  if (normalised === 'female' || normalised === 'f') return { feature: 'sex', value: 'female', evidence };
  return unparseable('sex', quoted(value), 'is not male or female', evidence);
}

function gleasonPart(feature: FeatureName, key: string, value: unknown): GleasonPart {
  const evidence = evidenceOf(key, value);
  const reading = readNumber(value);
  if ('value' in reading) return { value: reading.value, evidence };
  return { evidence, problem: { code: 'UNPARSEABLE', message: `${featureDefinition(feature).label} '${quoted(value)}' ${reading.reason}` } };
}

/**
 * Reads a structured note. Throws INVALID_REQUEST when `json` is not a JSON object: the shape of the
 * input is the caller's mistake, not a clinical finding.
 */
export function parseStructuredNote(json: unknown): ClinicalFeatures {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    const kind = json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json;
    throw new AppError('INVALID_REQUEST', `The structured clinical note must be a JSON object keyed by feature name; it is ${kind}`);
  }
  const observations: Observation[] = [];
  const unknown: string[] = [];
  const gleason: { primary?: GleasonPart; secondary?: GleasonPart; score?: GleasonPart } = {};
  const gleasonKeys: string[] = [];

  for (const [key, value] of Object.entries(json)) {
    if (!isFeatureName(key)) {
      unknown.push(key);
      continue;
    }
    if (value === null || value === undefined) continue;
    switch (key) {
      case 'psa':
        observations.push(psaObservation(key, value));
        break;
      case 't_stage':
        observations.push(tStageObservation(key, value));
        break;
      case 'sex':
        observations.push(sexObservation(key, value));
        break;
      case 'prior_treatment':
      case 'metastasis':
        observations.push(booleanObservation(key, key, value));
        break;
      case 'gleason_primary':
      case 'gleason_secondary':
      case 'gleason_score': {
        const slot = key === 'gleason_primary' ? 'primary' : key === 'gleason_secondary' ? 'secondary' : 'score';
        gleason[slot] = gleasonPart(key, key, value);
        gleasonKeys.push(`${key}: ${shown(value)}`);
        break;
      }
      case 'age':
      case 'grade_group':
      case 'pct_positive_cores':
      case 'ecog':
        observations.push(numberObservation(key, key, value));
        break;
    }
  }
  if (gleasonKeys.length > 0) observations.push(...gleasonObservations({ ...gleason, quote: `{ ${gleasonKeys.join(', ')} }` }));

  const trailing: FeatureIssue[] = unknown.slice(0, MAX_UNKNOWN_LISTED).map((key) => ({
    code: 'UNKNOWN_FIELD',
    message: `The structured note has a field '${key.length > MAX_SHOWN ? `${key.slice(0, MAX_SHOWN - 1)}…` : key}' that is not a clinical feature; it is ignored`,
  }));
  if (unknown.length > MAX_UNKNOWN_LISTED) {
    trailing.push({ code: 'UNKNOWN_FIELD', message: `The structured note has ${unknown.length - MAX_UNKNOWN_LISTED} more fields that are not clinical features; they are ignored` });
  }
  return resolveFeatures(observations, { trailing });
}
