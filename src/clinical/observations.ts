import type { ClinicalFeatures, FeatureIssue, FeatureIssueCode, FeatureSpan, FeatureValue } from '../core/report.ts';
import {
  FEATURE_CATALOGUE,
  describeTStage,
  featureDefinition,
  gradeGroupFromPatterns,
  gradeGroupFromScore,
  rangeProblem,
  type FeatureDefinition,
  type FeatureName,
} from './features.ts';

// What both note parsers share: a parser reports every statement it reads as an observation (a value,
// or the reason none could be read, with where it was found), and `resolveFeatures` turns the
// observations into ClinicalFeatures by one rule for all features:
//   - any statement of a feature that could not be used (unparseable, out of range, unknown unit)
//     leaves the feature empty, because the note is unreliable on it;
//   - two statements with different values leave it empty (CONTRADICTORY), with every span kept;
//   - the same value stated twice is one value.
// A feature left empty is reported, never guessed: the recommender then abstains and names the reason.

/** Where an observation was read: offsets in the note, or JSON keys. */
export type Evidence = Omit<FeatureSpan, 'feature'>;

export interface Problem {
  code: Exclude<FeatureIssueCode, 'NO_NOTE' | 'UNKNOWN_FIELD'>;
  /** A clause that says what was found and what is wrong with it: "PSA 'abc' is not a number". */
  message: string;
}

interface ObservationBase {
  feature: FeatureName;
  evidence: Evidence[];
  /** Set when the value was computed from other statements (grade group from Gleason patterns). */
  derived?: boolean;
}

export type Observation =
  | (ObservationBase & { value: Exclude<FeatureValue, null>; problem?: undefined })
  | (ObservationBase & { value?: undefined; problem: Problem });

/** A reading of a number: the value, or why the text is not one. */
export type NumberReading = { value: number } | { reason: string };

/**
 * Reads "12", "12.4", "-3", and "4,5" (decimal comma, as many European laboratories write it). A comma
 * followed by exactly three digits ("4,125") is refused: in an English note it separates thousands, in
 * a German one decimals, and the two readings differ a thousandfold.
 */
export function parseDecimal(raw: string): NumberReading {
  const match = /^([-−]?)(\d{1,9})(?:([.,])(\d{1,9}))?$/.exec(raw.trim());
  if (!match) return { reason: 'is not a number' };
  const [, sign = '', whole = '', separator, fraction] = match;
  if (separator === ',' && fraction?.length === 3 && !/^0+$/.test(whole)) {
    return { reason: 'is ambiguous: the comma may separate thousands or decimals' };
  }
  const value = Number(`${sign ? '-' : ''}${whole}${fraction === undefined ? '' : `.${fraction}`}`);
  // -0 is written "0" and compares equal; normalise so a reading of "-0" does not look signed.
  return { value: value + 0 };
}

// Units total PSA is reported in, as the divisor to ng/mL: ng/mL and µg/L are the same quantity, ng/L
// and pg/mL are used by ultrasensitive assays. ng/dL is deliberately absent: no laboratory reports PSA
// in it, so it is a typing error, and converting it would shift the value a hundredfold in a direction
// nobody can check.
const PSA_UNIT_DIVISORS: Readonly<Record<string, number>> = { 'ng/ml': 1, 'µg/l': 1, 'ng/l': 1000, 'pg/ml': 1000 };

/**
 * A PSA value in ng/mL from a value in `unit` as written ("ng/mL", "ng / ml", "ug/L", "μg/L", "mcg/L",
 * "pg/mL"), or undefined for a unit PSA is not reported in. Dividing (not multiplying by 0.001) keeps
 * 15 pg/mL at exactly 0.015.
 */
export function psaInNgPerMl(value: number, unit: string): number | undefined {
  const normalised = unit.replace(/\s+/g, '').toLowerCase().replace(/^(?:u|μ|mc)g\//, 'µg/');
  const divisor = PSA_UNIT_DIVISORS[normalised];
  return divisor === undefined ? undefined : value / divisor;
}

/** How a value is written in messages: with its unit, T stages as categories, flags as yes/no. */
export function formatFeatureValue(definition: FeatureDefinition, value: Exclude<FeatureValue, null>): string {
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'string') return value;
  if (definition.name === 't_stage') return describeTStage(value);
  if (definition.unit === '%') return `${value}%`;
  return definition.unit ? `${value} ${definition.unit}` : String(value);
}

/**
 * An observation of a numeric feature, checked against the catalogue: a whole number where one is
 * required, inside the range, one of the allowed codes.
 */
export function observeNumber(feature: FeatureName, value: number, evidence: Evidence[], derived = false): Observation {
  const definition = featureDefinition(feature);
  const base = { feature, evidence, ...(derived ? { derived } : {}) };
  const shown = `${definition.label} ${formatFeatureValue(definition, value)}`;
  if (definition.type === 'integer' && !Number.isInteger(value)) {
    return { ...base, problem: { code: 'UNPARSEABLE', message: `${shown} is not a whole number` } };
  }
  const outside = rangeProblem(definition, value);
  if (outside) return { ...base, problem: { code: 'OUT_OF_RANGE', message: `${shown} ${outside}` } };
  if (definition.codes && !definition.codes.includes(value)) {
    return { ...base, problem: { code: 'UNPARSEABLE', message: `${shown} is not one of the coded values ${definition.codes.join(', ')}` } };
  }
  return { ...base, value };
}

/** An observation that could not be read: `shown` is the text as found. */
export function unparseable(feature: FeatureName, shown: string, reason: string, evidence: Evidence[]): Observation {
  return { feature, evidence, problem: { code: 'UNPARSEABLE', message: `${featureDefinition(feature).label} '${shown}' ${reason}` } };
}

function evidenceKey(e: Evidence): string {
  return `${e.source}\u0000${e.start ?? ''}\u0000${e.end ?? ''}\u0000${e.key ?? ''}`;
}

/** The evidence lists joined, each place once (a note's Gleason parts all point at one expression). */
function joinEvidence(...lists: Evidence[][]): Evidence[] {
  const seen = new Set<string>();
  return lists.flat().filter((e) => {
    const key = evidenceKey(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** One part of a Gleason statement: the number read, or why nothing could be. */
export type GleasonPart = { evidence: Evidence[] } & ({ value: number } | { problem: Problem });

export interface GleasonStatement {
  primary?: GleasonPart | undefined;
  secondary?: GleasonPart | undefined;
  score?: GleasonPart | undefined;
  /** How messages quote the statement: "'Gleason 3+4=8'" or "gleason_primary 3, gleason_secondary 6". */
  quote: string;
}

function checkPart(feature: FeatureName, part: GleasonPart): Observation {
  return 'problem' in part ? { feature, evidence: part.evidence, problem: part.problem } : observeNumber(feature, part.value, part.evidence);
}

/**
 * The observations one Gleason statement yields: its parts, the score as their sum when not given, and
 * the grade group (ISUP 2014) when the statement determines it. A statement whose parts cannot be used,
 * or whose stated score is not the sum of its patterns, yields a grade-group problem with the same
 * cause, so the grade group the recommender reads is never taken from a statement that is wrong
 * elsewhere.
 */
export function gleasonObservations(statement: GleasonStatement): Observation[] {
  const { primary, secondary, score, quote } = statement;
  const out: Observation[] = [];
  const p = primary && checkPart('gleason_primary', primary);
  const s = secondary && checkPart('gleason_secondary', secondary);
  let total = score && checkPart('gleason_score', score);
  const patternEvidence = joinEvidence(primary?.evidence ?? [], secondary?.evidence ?? []);

  if (typeof p?.value === 'number' && typeof s?.value === 'number') {
    const sum = p.value + s.value;
    if (total === undefined) {
      total = observeNumber('gleason_score', sum, patternEvidence, true);
    } else if (total.value !== undefined && total.value !== sum) {
      total = {
        feature: 'gleason_score',
        evidence: total.evidence,
        problem: { code: 'CONTRADICTORY', message: `Gleason ${p.value}+${s.value} adds up to ${sum}, but the score is given as ${String(total.value)}` },
      };
    }
  }
  for (const observation of [p, s, total]) if (observation) out.push(observation);

  const evidence = joinEvidence(patternEvidence, score?.evidence ?? []);
  const failed = [p, s, total].find((o) => o?.problem !== undefined)?.problem;
  if (failed) {
    out.push({ feature: 'grade_group', evidence, derived: true, problem: { code: failed.code, message: `grade group cannot be derived from ${quote}: ${failed.message}` } });
    return out;
  }
  let group: number | undefined;
  if (typeof p?.value === 'number' && typeof s?.value === 'number') group = gradeGroupFromPatterns(p.value, s.value);
  else if (p === undefined && s === undefined && typeof total?.value === 'number') group = gradeGroupFromScore(total.value);
  if (group !== undefined) out.push(observeNumber('grade_group', group, evidence, true));
  return out;
}

function quoteEvidence(evidence: Evidence[]): string {
  return evidence.map((e) => (e.source === 'note' ? `'${e.text}'` : `${e.key ?? '?'}: ${e.text}`)).join(', ');
}

function agree(definition: FeatureDefinition, a: Exclude<FeatureValue, null>, b: Exclude<FeatureValue, null>): boolean {
  if (a === b) return true;
  if (typeof a !== 'number' || typeof b !== 'number') return false;
  // "cT2" and "cT2b" say the same thing at two levels of detail; "cT2a" and "cT2b" contradict.
  if (definition.name === 't_stage') return Math.trunc(a) === Math.trunc(b) && (Number.isInteger(a) || Number.isInteger(b));
  return definition.agreement !== undefined && Math.abs(a - b) <= definition.agreement;
}

/** The more detailed of two agreeing values: a T subcategory over its bare category, else the first. */
function preferred(definition: FeatureDefinition, kept: Exclude<FeatureValue, null>, other: Exclude<FeatureValue, null>): Exclude<FeatureValue, null> {
  return definition.name === 't_stage' && typeof kept === 'number' && Number.isInteger(kept) ? other : kept;
}

interface Group {
  value: Exclude<FeatureValue, null>;
  readings: Observation[];
}

function groupReadings(definition: FeatureDefinition, readings: Observation[]): Group[] {
  const groups: Group[] = [];
  for (const reading of readings) {
    if (reading.value === undefined) continue;
    const value = reading.value;
    const group = groups.find((g) => agree(definition, g.value, value));
    if (group) {
      group.value = preferred(definition, group.value, value);
      group.readings.push(reading);
    } else {
      groups.push({ value, readings: [reading] });
    }
  }
  return groups;
}

function contradiction(definition: FeatureDefinition, groups: Group[]): string {
  const stated = groups.map((g) => {
    const sources = g.readings.map((r) => `${quoteEvidence(r.evidence)}${r.derived ? ' (derived)' : ''}`);
    return `${formatFeatureValue(definition, g.value)} (${sources.join('; ')})`;
  });
  const listed = stated.length > 2 ? `${stated.slice(0, -1).join(', ')} and ${stated.at(-1) ?? ''}` : stated.join(' and ');
  return `${definition.label} is given as ${listed}`;
}

/**
 * ClinicalFeatures from observations: every catalogue feature present in `values` (null when missing
 * or not usable), spans for every statement found (used or not, in reading order), and issues in
 * catalogue order after `leading` and before `trailing`.
 */
export function resolveFeatures(observations: readonly Observation[], extra: { leading?: FeatureIssue[]; trailing?: FeatureIssue[] } = {}): ClinicalFeatures {
  const values: Record<string, FeatureValue> = {};
  const issues: FeatureIssue[] = [...(extra.leading ?? [])];
  for (const definition of FEATURE_CATALOGUE) {
    values[definition.name] = null;
    const mine = observations.filter((o) => o.feature === definition.name);
    if (mine.length === 0) continue;
    const problems = mine.flatMap((o) => (o.problem ? [o.problem] : []));
    for (const problem of problems) {
      issues.push({ code: problem.code, feature: definition.name, message: `${problem.message}; ${definition.label} is not used` });
    }
    const groups = groupReadings(definition, mine);
    if (groups.length > 1) {
      issues.push({ code: 'CONTRADICTORY', feature: definition.name, message: `${contradiction(definition, groups)}; ${definition.label} is not used` });
    } else if (problems.length === 0 && groups[0]) {
      values[definition.name] = groups[0].value;
    }
  }
  issues.push(...(extra.trailing ?? []));

  const seen = new Set<string>();
  const spans: FeatureSpan[] = [];
  for (const observation of observations) {
    for (const evidence of observation.evidence) {
      const span: FeatureSpan = { feature: observation.feature, ...evidence };
      const key = `${span.feature}\u0000${evidenceKey(evidence)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      spans.push(span);
    }
  }
  const order = new Map<string, number>(FEATURE_CATALOGUE.map((f, i) => [f.name, i]));
  spans.sort((a, b) => (a.start ?? 0) - (b.start ?? 0) || (order.get(a.feature) ?? 0) - (order.get(b.feature) ?? 0));

  const unique = new Set<string>();
  return {
    values,
    spans,
    issues: issues.filter((i) => {
      const key = `${i.code}\u0000${i.feature ?? ''}\u0000${i.message}`;
      if (unique.has(key)) return false;
      unique.add(key);
      return true;
    }),
  };
}
