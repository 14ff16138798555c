import type { Device, Observation, ObservationComponent } from '@medplum/fhirtypes';
import type { LlmRecommendation } from '../core/report.ts';
import { DXFLOW_SYSTEM, reportPartCoding, RULE_BASED_TEXT_PROVIDER, type ReportPartCode } from './codes.ts';
import { fhirString, INVESTIGATIONAL_NOTE, reference, REVIEW_NOTICE, type Entry } from './entry.ts';

// The generated clinical summary: one Observation whose value is the summary and whose components are the
// listed differentials, follow-up tests and treatment considerations. Not ClinicalImpression, the R4
// resource for a clinician's assessment: its status set (in-progress | completed | entered-in-error) has
// no "preliminary", its `assessor` must be a Practitioner, and it would present generated text as a
// clinician's judgement. An Observation can be preliminary and name the generator as its `device`.
//
// The text is copied because it is the deliverable. It is written from the de-identified values the
// prompt module allows (src/llm/render.ts: findings, feature values, the recommendation), never from the
// note. Operational details stay in the JSON result: the fallback reason (a provider's error text) and
// the token counts and latency.

const DATA_ABSENT_REASON = 'http://terminology.hl7.org/CodeSystem/data-absent-reason';

export interface LlmContext {
  recordedAt: string;
  /** The generator's Device (textGeneratorDevice). */
  device: Entry<Device>;
  /** The finding Observations the text discusses. */
  findings: readonly Entry<Observation>[];
}

export function llmObservation(llm: LlmRecommendation, context: LlmContext): Observation {
  const origin = textOrigin(llm);
  const summary = fhirString(llm.output.summary);
  const { output } = llm;
  const component = [
    ...output.differentials.map((d) => item('differential-diagnosis', d.diagnosis, d.rationale)),
    ...output.followUpTests.map((t) => item('follow-up-test', t.test, t.rationale)),
    ...output.treatmentConsiderations.map((t) => item('treatment-consideration', t.consideration, t.rationale)),
  ].filter((c) => c !== undefined);
  const label = llm.prompt.label === null ? '' : ` (label ${llm.prompt.label})`;
  return {
    resourceType: 'Observation',
    status: 'preliminary',
    code: { coding: [reportPartCoding('llm-recommendation')], text: origin.title },
    effectiveDateTime: context.recordedAt,
    issued: context.recordedAt,
    ...(summary
      ? { valueString: summary }
      : { dataAbsentReason: { coding: [{ system: DATA_ABSENT_REASON, code: 'unknown', display: 'Unknown' }] } }),
    method: {
      // `<name>.v<version>` as the prompt files are named: the pair identifies the exact text sent; a
      // label moves between versions, so it is stated in the text only.
      coding: [{ system: DXFLOW_SYSTEM.prompt, code: `${llm.prompt.name}.v${llm.prompt.version}` }],
      text: `Prompt "${llm.prompt.name}" version ${llm.prompt.version}${label}, answered by ${llm.model} (${llm.provider} provider)`,
    },
    device: reference(context.device),
    ...(context.findings.length > 0 ? { derivedFrom: context.findings.map(reference) } : {}),
    ...(component.length > 0 ? { component } : {}),
    note: [{ text: origin.notice }, { text: REVIEW_NOTICE }],
  };
}

/** The generator of the text as a Device: a language model, or dxflow's offline rules. */
export function textGeneratorDevice(llm: LlmRecommendation): Device {
  const ruleBased = llm.provider === RULE_BASED_TEXT_PROVIDER;
  return {
    resourceType: 'Device',
    deviceName: [{ name: llm.model, type: 'model-name' }],
    type: ruleBased
      ? { coding: [{ system: DXFLOW_SYSTEM.modelKind, code: 'rules' }], text: 'dxflow offline rules, not a language model' }
      : { coding: [{ system: DXFLOW_SYSTEM.modelKind, code: 'llm' }], text: `language model (${llm.provider} provider)` },
    // A hosted model has no version apart from its name, which providers pin by date ("gpt-4o-2024-08-06").
    version: [{ value: llm.model }],
    note: [{ text: INVESTIGATIONAL_NOTE }],
  };
}

// Who wrote the text, said where a reader looks first (the code text) and in full in a note: output of a
// language model is marked AI-generated; the offline rules are not a language model and are marked
// rule-based, and a fallback says that the configured model failed.
function textOrigin(llm: LlmRecommendation): { title: string; notice: string } {
  const failed = llm.fallback ? ' It replaces the configured language model, which failed for this case.' : '';
  if (llm.provider === RULE_BASED_TEXT_PROVIDER) {
    return {
      title: llm.fallback ? 'Rule-based fallback summary (the language model failed)' : 'Rule-based summary',
      notice: `Rule-based text: written by dxflow's offline rules (${llm.model}) from the structured result, not by a language model.${failed}`,
    };
  }
  return {
    title: llm.fallback ? 'AI-generated clinical summary (fallback language model)' : 'AI-generated clinical summary',
    notice: `AI-generated text: written by the language model ${llm.model} (${llm.provider} provider) from de-identified values of this case; ` +
      `it may be wrong or incomplete and is not a diagnosis.${failed}`,
  };
}

function item(code: ReportPartCode, what: string, rationale: string): ObservationComponent | undefined {
  const text = fhirString(what);
  if (text === undefined) return undefined;
  const why = fhirString(rationale);
  return { code: { coding: [reportPartCoding(code)] }, valueString: why ? `${text} — ${why}` : text };
}
