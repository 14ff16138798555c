import type { Reference, Resource } from '@medplum/fhirtypes';

// What the FHIR mappers share: a bundle entry under construction, references to it, and the fixed
// notices that every clinical part of the bundle carries.

export interface Entry<T extends Resource> {
  fullUrl: string;
  resource: T;
}

export const REVIEW_NOTICE = 'Preliminary output of investigational AI software: a clinician must review it before any clinical use.';
export const INVESTIGATIONAL_NOTE = 'Investigational software for research and demonstration, not a cleared medical device; its output must be reviewed by a clinician.';

export function reference<T extends Resource>(entry: Entry<T>): Reference<T> {
  const display = referenceDisplay(entry.resource);
  return { reference: entry.fullUrl, ...(display ? { display } : {}) };
}

function referenceDisplay(resource: Resource): string | undefined {
  if (resource.resourceType !== 'Device') return undefined;
  const name = resource.deviceName?.[0]?.name;
  const version = resource.version?.[0]?.value;
  // A language model is versioned by its name alone ("gpt-4o-mini-2024-07-18"): say it once.
  return name && version && version !== name ? `${name} ${version}` : name;
}

/**
 * Text for a FHIR `string`: trimmed, or undefined when nothing is left. A blank value is invalid (R4
 * Datatypes, primitive types: a value is "either absent, or present with at least one character of
 * non-whitespace content"), and a stage may leave one in a free-text field.
 */
export function fhirString(text: string): string | undefined {
  const trimmed = text.trim();
  return trimmed === '' ? undefined : trimmed;
}

/** A probability as the report text states it: at most three decimals, no trailing zeros. */
export function formatProbability(p: number): string {
  return String(Number(p.toFixed(3)));
}
