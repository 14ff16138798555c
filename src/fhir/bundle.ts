import { createHash } from 'node:crypto';
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  DetectedIssue,
  Device,
  DiagnosticReport,
  Media,
  Observation,
  Provenance,
  ProvenanceAgent,
  ProvenanceEntity,
  Resource,
  RiskAssessment,
} from '@medplum/fhirtypes';
import { AppError, ERROR_CODES } from '../core/errors.ts';
import type { Billing, Heatmap, LlmRecommendation, Recommendation, ShapExplanation } from '../core/report.ts';
import type { CaseError, CaseResult, Finding, InputRecord, ModelRef, NoteRecord } from '../core/result.ts';
import { billingObservation } from './billing.ts';
import {
  DXFLOW_SYSTEM,
  isErrorCode,
  PROVENANCE_PARTICIPANT_TYPE,
  reportKindFor,
  UCUM,
  V3_DATA_OPERATION,
  type ReportKind,
} from './codes.ts';
import { fhirString, formatProbability, INVESTIGATIONAL_NOTE, reference, REVIEW_NOTICE, type Entry } from './entry.ts';
import { heatmapComment, heatmapFileName, heatmapMedia, shapObservation } from './explanations.ts';
import { llmObservation, textGeneratorDevice } from './llm-recommendation.ts';
import { detectedIssueResource, recommendationSentence, riskAssessmentResource, type RecommendationContext } from './recommendation.ts';

// A case result as a FHIR R4 `collection` Bundle (DESIGN.md §4): one DiagnosticReport, one Observation per
// finding, the recommendation (RiskAssessment) or the escalation (DetectedIssue), the explanations (SHAP
// Observations, heatmap Media), the generated summary and the billing suggestions (Observations), one
// Device per model version plus one for the pipeline itself and one for the text generator, and a
// Provenance tying them to the analysed input and note. Each part's module says why it maps to its
// resource.
//
// PHI rule: nothing the submitter wrote is copied. The bundle carries ids, hashes, codes, numbers,
// timestamps, text from dxflow's own configuration (pipeline, stage and model names, manifest labels,
// error hints, the billing table) and the generated summary, which is written from de-identified values
// only (llm-recommendation.ts). Input file names and object keys may carry patient names and are never
// read here (a heatmap's key yields only its file name, which dxflow chose); the note and the text spans
// read from it stay out; error and abstention messages may quote input data, so the report states the
// fixed text of their codes instead.

export interface FhirBundleOptions {
  /**
   * Public base URL of the dxflow API; when set, the bundle links to the case's JSON representation and
   * heatmap URLs are absolute. Without it they are relative to the API's origin (`/v1/cases/…`).
   */
  baseUrl?: string;
  /**
   * Bundle.timestamp. Defaults to the time the result was recorded, not the wall clock, so the same
   * result always maps to the same bundle.
   */
  generatedAt?: string;
}

/** The explained parts of a result that the bundle releases. */
interface ReleasedParts {
  recommendation: Recommendation | null;
  shap: readonly ShapExplanation[];
  heatmaps: readonly Heatmap[];
  llm: LlmRecommendation | null;
  billing: Billing | null;
}

const NOTHING_RELEASED: ReleasedParts = { recommendation: null, shap: [], heatmaps: [], llm: null, billing: null };

export function toFhirBundle(result: CaseResult, options: FhirBundleOptions = {}): Bundle {
  const urn = (role: string): string => `urn:uuid:${deterministicUuid(result.id, role)}`;
  // When the result was recorded: completion for finished cases, the last update for unfinished ones.
  const recordedAt = result.completedAt === null
    ? toInstant(result.updatedAt, 'updatedAt', result.id)
    : toInstant(result.completedAt, 'completedAt', result.id);
  const kind = reportKindFor(result.pipeline);

  // A failed case releases no findings and no explained parts: whatever stages ran before the failure
  // produced results that the rest of the pipeline (confidence policy, fallback) never saw, and a
  // cancelled report has no results. The JSON result still lists them for debugging.
  const failed = result.status === 'failed';
  const released = failed ? [] : result.findings;
  const parts: ReleasedParts = failed
    ? NOTHING_RELEASED
    : { recommendation: result.recommendation, ...result.explanations, llm: result.llm, billing: result.billing };
  const recommendation = parts.recommendation;

  const pipelineDevice: Entry<Device> = { fullUrl: urn('device:pipeline'), resource: pipelineDeviceResource(result.pipeline) };
  const modelDevices = distinctModels(result, recommendation).map((model) => ({
    model,
    fullUrl: urn(`device:model:${modelKey(model)}`),
    resource: modelDeviceResource(model),
  }));
  // A finding without a model (a rule-based stage) is attributed to the pipeline itself.
  const deviceFor = (model: ModelRef | undefined): Entry<Device> =>
    model === undefined ? pipelineDevice : modelDevices.find((d) => modelKey(d.model) === modelKey(model)) ?? pipelineDevice;
  const textDevice: Entry<Device> | undefined = parts.llm
    ? { fullUrl: urn('device:text-generator'), resource: textGeneratorDevice(parts.llm) }
    : undefined;

  const observationRole = distinctRoles('observation');
  const findings = released.map((finding) => ({
    finding,
    entry: {
      fullUrl: urn(observationRole(JSON.stringify([finding.stage, finding.code]))),
      resource: observationResource(finding, result, kind, recordedAt, deviceFor(finding.model)),
    } satisfies Entry<Observation>,
  }));
  const observations = findings.map((f) => f.entry);

  // The recommender reads the other models' findings; its own, should it report any, are not its input.
  const recommenderModel = recommendation?.model;
  const recommendationContext: RecommendationContext = {
    recordedAt,
    device: recommenderModel ? deviceFor(recommenderModel) : undefined,
    basis: findings.filter((f) => !recommenderModel || !f.finding.model || modelKey(f.finding.model) !== modelKey(recommenderModel)).map((f) => f.entry),
  };
  const riskAssessment: Entry<RiskAssessment> | undefined = recommendation?.status === 'recommended'
    ? { fullUrl: urn('risk-assessment'), resource: riskAssessmentResource(recommendation, recommendationContext) }
    : undefined;
  const detectedIssue: Entry<DetectedIssue> | undefined = recommendation?.status === 'abstained'
    ? { fullUrl: urn('detected-issue'), resource: detectedIssueResource(recommendation, recommendationContext) }
    : undefined;

  const shapRole = distinctRoles('shap');
  const shapObservations: Entry<Observation>[] = parts.shap.map((shap) => {
    const relation = shapRelation(shap, recommendation);
    return {
      fullUrl: urn(shapRole(JSON.stringify([shap.model, shap.version, shap.output]))),
      resource: shapObservation(shap, {
        recordedAt,
        device: modelDevices.find((d) => d.model.name === shap.model && d.model.version === shap.version),
        recommendation: riskAssessment && relation.kind === 'recommended' ? { entry: riskAssessment, display: relation.display } : undefined,
        withheld: relation.kind === 'withheld',
      }),
    };
  });

  const mediaRole = distinctRoles('media');
  const heatmaps = parts.heatmaps.map((heatmap) => {
    const explains = explainedFinding(heatmap, released);
    const url = apiUrl(options.baseUrl, `v1/cases/${encodeURIComponent(result.id)}/files/${encodeURIComponent(heatmapFileName(result.id, heatmap))}`);
    return {
      comment: heatmapComment(heatmap, explains),
      entry: {
        fullUrl: urn(mediaRole(heatmap.objectKey)),
        resource: heatmapMedia(heatmap, { recordedAt, device: modelDevices.find((d) => d.model.name === heatmap.model), url, explains }),
      } satisfies Entry<Media>,
    };
  });

  const summary: Entry<Observation> | undefined = parts.llm && textDevice
    ? { fullUrl: urn('llm-recommendation'), resource: llmObservation(parts.llm, { recordedAt, device: textDevice, findings: observations }) }
    : undefined;

  // DiagnosticReport.result holds the Observations that are part of the report: the findings and what
  // explains or discusses them. Billing suggestions are not clinical results (billing.ts).
  const results = [...observations, ...shapObservations, ...(summary ? [summary] : [])];
  const report: Entry<DiagnosticReport> = {
    fullUrl: urn('diagnostic-report'),
    resource: {
      resourceType: 'DiagnosticReport',
      identifier: [{ system: DXFLOW_SYSTEM.case, value: result.id }],
      status: reportStatus(result, released),
      category: [{ coding: [kind.category] }],
      code: reportCode(result.pipeline, kind),
      effectiveDateTime: recordedAt,
      issued: recordedAt,
      ...(results.length > 0 ? { result: results.map(reference) } : {}),
      ...(heatmaps.length > 0 ? { media: heatmaps.map((h) => ({ comment: h.comment, link: reference(h.entry) })) } : {}),
      conclusion: conclusion(result, released, recommendation),
    },
  };

  const billingRole = distinctRoles('billing');
  const billing = parts.billing;
  const billingObservations: Entry<Observation>[] = billing
    ? billing.items.map((item) => ({
      fullUrl: urn(billingRole(JSON.stringify([item.system, item.code]))),
      resource: billingObservation(item, billing, { recordedAt, device: pipelineDevice, report, findings }),
    }))
    : [];

  const explained: Entry<Resource>[] = [
    ...(riskAssessment ? [riskAssessment] : []),
    ...(detectedIssue ? [detectedIssue] : []),
    ...shapObservations,
    ...heatmaps.map((h) => h.entry),
    ...(summary ? [summary] : []),
    ...billingObservations,
  ];
  const performers = [...modelDevices, ...(textDevice ? [textDevice] : [])];
  const sources = [...(result.input ? [inputEntity(result.input)] : []), ...(result.note ? [noteEntity(result.note)] : [])];
  const provenance: Entry<Provenance> = {
    fullUrl: urn('provenance'),
    resource: {
      resourceType: 'Provenance',
      target: [report, ...observations, ...explained].map(reference),
      ...(result.completedAt
        ? { occurredPeriod: { start: toInstant(result.createdAt, 'createdAt', result.id), end: recordedAt } }
        : {}),
      recorded: recordedAt,
      activity: { coding: [{ system: V3_DATA_OPERATION, code: 'CREATE', display: 'create' }] },
      agent: [
        agent('assembler', 'Assembler', pipelineDevice),
        ...performers.map((device) => agent('performer', 'Performer', device)),
      ],
      ...(sources.length > 0 ? { entity: sources } : {}),
    },
  };

  const entries: Entry<Resource>[] = [report, ...observations, ...explained, pipelineDevice, ...performers, provenance];
  return {
    resourceType: 'Bundle',
    identifier: { system: 'urn:ietf:rfc:3986', value: urn('bundle') },
    type: 'collection',
    timestamp: options.generatedAt === undefined ? recordedAt : toInstant(options.generatedAt, 'generatedAt', result.id),
    ...(options.baseUrl === undefined ? {} : { link: [{ relation: 'alternate', url: apiUrl(options.baseUrl, `v1/cases/${encodeURIComponent(result.id)}`) }] }),
    entry: entries.map((e): BundleEntry => ({ fullUrl: e.fullUrl, resource: e.resource })),
  };
}

// DiagnosticReport.status from the R4 value set diagnostic-report-status:
// - succeeded → `preliminary`, never `final`: `final` means "complete and verified by an authorized
//   person", and AI output is never final without a clinician (DESIGN.md §4).
// - failed → `cancelled`: "the report is unavailable because the measurement was not started or not
//   completed (also sometimes called 'aborted')". Not `entered-in-error`, which withdraws a report that
//   was released, and not `preliminary`, which promises results.
// - queued → `registered` ("nothing yet available"); running → `partial` once findings exist.
function reportStatus(result: CaseResult, released: readonly Finding[]): DiagnosticReport['status'] {
  switch (result.status) {
    case 'succeeded':
      return 'preliminary';
    case 'failed':
      return 'cancelled';
    case 'running':
      return released.length > 0 ? 'partial' : 'registered';
    case 'queued':
      return 'registered';
  }
}

function reportCode(pipeline: string, kind: ReportKind): CodeableConcept {
  return {
    coding: [...(kind.loinc ? [kind.loinc] : []), { system: DXFLOW_SYSTEM.pipeline, code: pipeline }],
    text: `dxflow AI analysis (${pipeline} pipeline)`,
  };
}

function conclusion(result: CaseResult, released: readonly Finding[], recommendation: Recommendation | null): string {
  if (result.status === 'failed') return failureConclusion(result.error);
  const top = topFinding(released);
  const sentences: string[] = [];
  if (result.status !== 'succeeded') {
    sentences.push('The analysis has not finished.', ...(top ? [`Top finding so far: ${describeFinding(top)}.`] : []));
  } else if (top) {
    const count = released.length === 1 ? '1 finding' : `${released.length} findings`;
    sentences.push(`Top finding: ${describeFinding(top)} (${count} in total).`);
  } else {
    sentences.push('The analysis produced no findings.');
  }
  if (recommendation) sentences.push(recommendationSentence(recommendation));
  sentences.push(REVIEW_NOTICE);
  return sentences.join(' ');
}

function failureConclusion(error: CaseError | null): string {
  if (!error) return 'The analysis did not complete; no error was recorded.';
  const where = error.stage ? ` in stage "${error.stage}"` : '';
  // The hint comes from the error-code table, not from the case: see the PHI rule above.
  const hint = isErrorCode(error.code) ? ` ${ERROR_CODES[error.code].hint}` : '';
  return `The analysis did not complete: error ${error.code}${where}.${hint}`;
}

/** Highest probability wins; on a tie the earlier finding, so the choice is deterministic. */
function topFinding(findings: readonly Finding[]): Finding | undefined {
  return findings.reduce<Finding | undefined>((best, f) => (best === undefined || f.probability > best.probability ? f : best), undefined);
}

function describeFinding(f: Finding): string {
  const model = f.model ? `, model ${f.model.name} ${f.model.version}` : '';
  return `${findingText(f)}, probability ${formatProbability(f.probability)}${model}`;
}

function findingText(f: Finding): string {
  return f.label.trim() ? `${f.label} (${f.code})` : f.code;
}

type ShapRelation = { kind: 'recommended'; display: string | undefined } | { kind: 'withheld' } | { kind: 'unrelated' };

/**
 * What a SHAP explanation explains: the recommended class, the class an abstention withheld (the stage
 * explains the model's top class either way), or an output unrelated to the recommendation.
 */
function shapRelation(shap: ShapExplanation, recommendation: Recommendation | null): ShapRelation {
  const model = recommendation?.model;
  const sameModel = model !== undefined && model.name === shap.model && model.version === shap.version;
  if (recommendation?.status === 'recommended' && sameModel && recommendation.code === shap.output) {
    return { kind: 'recommended', display: fhirString(recommendation.display) };
  }
  if (recommendation?.status === 'abstained' && (sameModel || (recommendation.withheld ?? []).some((w) => w.code === shap.output))) {
    return { kind: 'withheld' };
  }
  return { kind: 'unrelated' };
}

/** The finding a heatmap explains, as the report names it; the bare class code when none was released. */
function explainedFinding(heatmap: Heatmap, released: readonly Finding[]): string {
  const finding = released.find((f) => f.code === heatmap.label && (f.model === undefined || f.model.name === heatmap.model));
  return finding ? findingText(finding) : heatmap.label;
}

function observationResource(
  finding: Finding,
  result: CaseResult,
  kind: ReportKind,
  recordedAt: string,
  device: Entry<Device>,
): Observation {
  return {
    resourceType: 'Observation',
    status: 'preliminary',
    ...(kind.observationCategory ? { category: [{ coding: [kind.observationCategory] }] } : {}),
    code: {
      coding: [{ system: DXFLOW_SYSTEM.finding, code: finding.code, ...(finding.label.trim() ? { display: finding.label } : {}) }],
      text: finding.label.trim() || finding.code,
    },
    effectiveDateTime: recordedAt,
    issued: recordedAt,
    // The probability as a UCUM dimensionless ratio (unit "1", value in [0, 1]) rather than a percentage:
    // it is the number the model produced and the JSON result carries, with no rescaling or rounding.
    valueQuantity: { value: finding.probability, unit: '1', system: UCUM, code: '1' },
    method: { text: methodText(finding, result) },
    device: reference(device),
  };
}

function methodText(finding: Finding, result: CaseResult): string {
  const uses = result.timings.find((t) => t.stage === finding.stage)?.uses;
  return `Stage "${finding.stage}"${uses ? ` (${uses})` : ''} of the dxflow ${result.pipeline} pipeline`;
}

function pipelineDeviceResource(pipeline: string): Device {
  return {
    resourceType: 'Device',
    identifier: [{ system: DXFLOW_SYSTEM.pipeline, value: pipeline }],
    deviceName: [{ name: `dxflow ${pipeline} pipeline`, type: 'user-friendly-name' }],
    type: { text: 'dxflow analysis pipeline' },
    note: [{ text: INVESTIGATIONAL_NOTE }],
  };
}

function modelDeviceResource(model: ModelRef): Device {
  return {
    resourceType: 'Device',
    ...(model.sha256 ? { identifier: [{ system: DXFLOW_SYSTEM.modelSha256, value: model.sha256 }] } : {}),
    deviceName: [{ name: model.name, type: 'model-name' }],
    type: { coding: [{ system: DXFLOW_SYSTEM.modelKind, code: model.kind }], text: `${model.kind} model` },
    ...(model.version ? { version: [{ value: model.version }] } : {}),
    note: [{ text: INVESTIGATIONAL_NOTE }],
  };
}

/**
 * One Device per model version: the case's model list first, then any finding model it does not list,
 * then the recommender's.
 */
function distinctModels(result: CaseResult, recommendation: Recommendation | null): ModelRef[] {
  const byKey = new Map<string, ModelRef>();
  const listed = [...result.models, ...result.findings.flatMap((f) => (f.model ? [f.model] : [])), ...(recommendation?.model ? [recommendation.model] : [])];
  for (const model of listed) {
    if (!byKey.has(modelKey(model))) byKey.set(modelKey(model), model);
  }
  return [...byKey.values()];
}

function modelKey(model: ModelRef): string {
  return JSON.stringify([model.name, model.version, model.sha256]);
}

function agent(code: 'assembler' | 'performer', display: string, device: Entry<Device>): ProvenanceAgent {
  return { type: { coding: [{ system: PROVENANCE_PARTICIPANT_TYPE, code, display }] }, who: reference(device) };
}

/** What was analysed, identified by content hash only: the object key and file name may carry PHI. */
function inputEntity(input: InputRecord): ProvenanceEntity {
  const size = input.width && input.height ? `, ${input.width}×${input.height} px` : '';
  return {
    role: 'source',
    what: {
      identifier: { system: DXFLOW_SYSTEM.inputSha256, value: input.sha256 },
      display: `${input.mediaType} input${size}, ${input.bytes} bytes`,
    },
  };
}

/** The clinical note the recommender read, by content hash only, like the input. */
function noteEntity(note: NoteRecord): ProvenanceEntity {
  return {
    role: 'source',
    what: {
      identifier: { system: DXFLOW_SYSTEM.noteSha256, value: note.sha256 },
      display: `clinical note (${note.format}), ${note.bytes} bytes`,
    },
  };
}

/**
 * Roles named by a key; findings are unique per (stage, code) in storage, and a repeat, should one ever
 * occur, is numbered so that it still gets its own fullUrl (bdl-7).
 */
function distinctRoles(prefix: string): (key: string) => string {
  const seen = new Map<string, number>();
  return (key) => {
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    return `${prefix}:${key}${n === 0 ? '' : `#${n}`}`;
  };
}

// Entry ids are UUIDv8 (RFC 9562 §5.8, the name-based SHA-256 construction of its Appendix B.2): the
// first 128 bits of SHA-256 over a dxflow namespace, the case id and the resource's role in the bundle,
// with the version and variant bits set. The same result therefore always yields the same fullUrls
// (golden tests, idempotent re-export), and different cases never share one.
function deterministicUuid(caseId: string, role: string): string {
  const bytes = createHash('sha256').update(`dxflow:fhir-bundle\u0000${caseId}\u0000${role}`).digest().subarray(0, 16);
  bytes.writeUInt8((bytes.readUInt8(6) & 0x0f) | 0x80, 6);
  bytes.writeUInt8((bytes.readUInt8(8) & 0x3f) | 0x80, 8);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** FHIR `instant` (and a valid `dateTime`): full precision with a zone, as Date#toISOString writes it. */
function toInstant(value: string, field: string, caseId: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new AppError('INTERNAL', `Case ${caseId} has ${field} "${value}", which is not a timestamp; it cannot be mapped to FHIR.`);
  }
  return new Date(ms).toISOString();
}

/** An API path (without leading slash) as a URL: absolute under the public base URL, or origin-relative. */
function apiUrl(baseUrl: string | undefined, path: string): string {
  if (baseUrl === undefined) return `/${path}`;
  try {
    return new URL(path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).href;
  } catch (cause) {
    throw new AppError('CONFIG_INVALID', `The public base URL "${baseUrl}" is not an absolute URL; set it like https://dxflow.example.org.`, { cause });
  }
}
