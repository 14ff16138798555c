import type { DetectedIssue, Device, Observation, Patient, Reference, RiskAssessment, RiskAssessmentPrediction } from '@medplum/fhirtypes';
import { ESCALATE_DISPLAY, type AbstainReason, type Recommendation } from '../core/report.ts';
import { ABSTAIN_REASON, DXFLOW_SYSTEM, reportPartCoding } from './codes.ts';
import { fhirString, formatProbability, reference, REVIEW_NOTICE, type Entry } from './entry.ts';

// The treatment recommender's answer. The two outcomes map to different resources, so that nothing in
// an escalation can be read as a prediction:
//
// - recommended → RiskAssessment (DESIGN.md §4). R4 defines it as "an assessment of the likely
//   outcome(s) for a patient … as well as the likelihood of each outcome"; here each prediction is one
//   treatment class of the recommender with the probability the model gives it, recommended class first.
// - abstained → DetectedIssue. R4: "an actual or potential clinical issue with … one or more active or
//   proposed clinical actions", raised by a Device (`author`) and backed by coded `evidence`. The issue
//   is that no treatment can be proposed; each abstention reason is one piece of evidence. A
//   RiskAssessment without predictions could not carry the reasons as codes (its `reasonCode` is why
//   the assessment was made, not why it gave no answer), and `mitigation` is left out because it records
//   an action already taken or committed by a practitioner, whereas escalation is what dxflow asks for.
//
// The withheld class probabilities of an abstention stay in the JSON result for audit and never enter
// the bundle, which is what a clinical system reads; only the SHAP Observation names the withheld top
// class, by code and marked as withheld (explanations.ts).

type Recommended = Extract<Recommendation, { status: 'recommended' }>;
type Abstained = Extract<Recommendation, { status: 'abstained' }>;

export interface RecommendationContext {
  recordedAt: string;
  /** The recommender's Device; an abstention decided before any model ran has none. */
  device: Entry<Device> | undefined;
  /** The finding Observations the recommender read. */
  basis: readonly Entry<Observation>[];
}

// RiskAssessment.subject is 1..1 Reference(Patient|Group), and dxflow holds no patient data. A Patient
// resource would have to be invented: one identified by the case id would claim that id names a person,
// and two cases of one patient would read as two patients. In R4 `reference`, `identifier` and
// `display` of a Reference are each optional (later versions state it as invariant ref-2: at least one
// of them), so the subject is a typed display of the real patient, whom dxflow cannot point to; the
// receiving system, which knows the patient, fills in the reference.
const UNIDENTIFIED_PATIENT: Reference<Patient> = {
  type: 'Patient',
  display: 'The patient of this case, not identified here: dxflow holds no patient data',
};

export function riskAssessmentResource(rec: Recommended, context: RecommendationContext): RiskAssessment {
  const prediction = (
    cls: { code: string; display: string; probability: number },
    rationale: string,
  ): RiskAssessmentPrediction => {
    const display = fhirString(cls.display);
    return {
      outcome: { coding: [{ system: DXFLOW_SYSTEM.recommendation, code: cls.code, ...(display ? { display } : {}) }], text: display ?? cls.code },
      probabilityDecimal: cls.probability,
      rationale,
    };
  };
  return {
    resourceType: 'RiskAssessment',
    status: 'preliminary',
    code: { coding: [reportPartCoding('treatment-recommendation')], text: 'AI treatment recommendation' },
    subject: UNIDENTIFIED_PATIENT,
    occurrenceDateTime: context.recordedAt,
    ...(context.device ? { performer: reference(context.device) } : {}),
    method: { text: `Treatment recommender ${rec.model.name} ${rec.model.version} (${rec.model.kind} model) with its confidence policy` },
    ...(context.basis.length > 0 ? { basis: context.basis.map(reference) } : {}),
    prediction: [
      prediction(rec, 'Recommended: the class the model ranks first, and the confidence policy found no reason to withhold it.'),
      ...rec.alternatives.filter((a) => a.code !== rec.code).map((a) => prediction(a, 'Alternative: not recommended.')),
    ],
    note: [{ text: REVIEW_NOTICE }],
  };
}

export function detectedIssueResource(rec: Abstained, context: RecommendationContext): DetectedIssue {
  const model = rec.model ? ` ${rec.model.name} ${rec.model.version}` : '';
  return {
    resourceType: 'DetectedIssue',
    status: 'preliminary',
    code: { coding: [reportPartCoding('no-recommendation')], text: ESCALATE_DISPLAY },
    identifiedDateTime: context.recordedAt,
    ...(context.device ? { author: reference(context.device) } : {}),
    evidence: rec.reasons.map((r) => ({
      code: [{ coding: [{ system: DXFLOW_SYSTEM.abstainReason, code: r.code, display: ABSTAIN_REASON[r.code] }], text: reasonText(r) }],
    })),
    detail: `${ESCALATE_DISPLAY}. The treatment recommender${model} gave no answer because of: ${reasonList(rec.reasons)}. ${REVIEW_NOTICE}`,
  };
}

/** The recommendation as the DiagnosticReport conclusion states it; an escalation never names a class. */
export function recommendationSentence(rec: Recommendation): string {
  if (rec.status === 'abstained') return `${ESCALATE_DISPLAY}: ${reasonList(rec.reasons)}.`;
  const display = fhirString(rec.display);
  const what = display ? `${display} (${rec.code})` : rec.code;
  return `Recommendation: ${what}, probability ${formatProbability(rec.probability)}, model ${rec.model.name} ${rec.model.version}.`;
}

// The fixed display of the code plus the feature it concerns: see ABSTAIN_REASON for why the message
// is not used. Feature names come from the recommender manifest and the feature catalogue.
function reasonText(reason: AbstainReason): string {
  const feature = reason.feature === undefined ? undefined : fhirString(reason.feature);
  return `${ABSTAIN_REASON[reason.code]}${feature ? ` (${feature})` : ''}`;
}

function reasonList(reasons: readonly AbstainReason[]): string {
  return [...new Set(reasons.map(reasonText))].join('; ');
}
