import type { Device, DiagnosticReport, Observation } from '@medplum/fhirtypes';
import type { Billing, BillingSuggestion } from '../core/report.ts';
import type { Finding } from '../core/result.ts';
import { BILLING_CODE_SYSTEM, reportPartCoding } from './codes.ts';
import { fhirString, reference, type Entry } from './entry.ts';

// Billing-code suggestions, one Observation each, coded "billing code suggestion" with the ICD-10-CM or
// CPT code as its value. Chosen so that a receiving system cannot take a suggestion for something else:
// - not Claim, ChargeItem or Account: R4's financial resources are what billing systems act on, and a
//   suggestion must reach a human coder first (Billing.suggestionsOnly);
// - not Condition, Procedure or an Encounter diagnosis: they assert that the patient has the condition
//   or had the procedure. Here the code is only the value of a statement about coding;
// - not in DiagnosticReport.result, which lists the report's clinical results; `focus` names the report
//   the suggestion codes instead (R4 Observation.focus: what the observation is about when it is not the
//   patient of record).

const SUGGESTION_NOTICE = 'Suggestion only, for a human coder: not a diagnosis and not a claim; dxflow never submits billing codes.';

export interface BillingContext {
  recordedAt: string;
  /** The pipeline's Device: the suggestions come from its billing table, not from a model. */
  device: Entry<Device>;
  report: Entry<DiagnosticReport>;
  /** Released findings with their Observations, to link the findings a suggestion is based on. */
  findings: readonly { finding: Finding; entry: Entry<Observation> }[];
}

export function billingObservation(item: BillingSuggestion, billing: Billing, context: BillingContext): Observation {
  const display = fhirString(item.display);
  const rationale = fhirString(item.rationale);
  const basis = context.findings.filter((f) => item.basedOn.includes(f.finding.code));
  const basedOn = item.basedOn.map(fhirString).filter((code) => code !== undefined);
  return {
    resourceType: 'Observation',
    status: 'preliminary',
    code: { coding: [reportPartCoding('billing-code-suggestion')], text: 'Billing code suggestion (for a human coder, not a diagnosis)' },
    focus: [reference(context.report)],
    effectiveDateTime: context.recordedAt,
    issued: context.recordedAt,
    valueCodeableConcept: {
      coding: [{ system: BILLING_CODE_SYSTEM[item.system], code: item.code, ...(display ? { display } : {}) }],
      text: `${item.system} ${item.code}${display ? ` ${display}` : ''} (suggestion)`,
    },
    method: { text: `dxflow billing suggestion table ${billing.tableVersion}` },
    device: reference(context.device),
    ...(basis.length > 0 ? { derivedFrom: basis.map((f) => reference(f.entry)) } : {}),
    note: [
      ...(rationale ? [{ text: rationale }] : []),
      ...(basedOn.length > 0 ? [{ text: `Based on: ${basedOn.join(', ')}.` }] : []),
      { text: SUGGESTION_NOTICE },
    ],
  };
}
