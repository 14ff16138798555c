import { createHash } from 'node:crypto';
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  Device,
  DiagnosticReport,
  Observation,
  Provenance,
  ProvenanceAgent,
  ProvenanceEntity,
  Reference,
  Resource,
} from '@medplum/fhirtypes';
import { AppError, ERROR_CODES } from '../core/errors.ts';
import type { CaseError, CaseResult, Finding, InputRecord, ModelRef } from '../core/result.ts';
import {
  DXFLOW_SYSTEM,
  isErrorCode,
  PROVENANCE_PARTICIPANT_TYPE,
  reportKindFor,
  UCUM,
  V3_DATA_OPERATION,
  type ReportKind,
} from './codes.ts';

// A case result as a FHIR R4 `collection` Bundle (DESIGN.md §4): one DiagnosticReport, one Observation per
// finding, one Device per model version plus one for the pipeline itself, and a Provenance tying them to
// the analysed input.
//
// PHI rule: nothing free-text from the case is copied. The bundle carries ids, hashes, codes, numbers,
// timestamps and text from dxflow's own configuration (pipeline, stage and model names, manifest labels,
// error hints). Input file names and object keys may carry patient names and are never read here; error
// messages may quote input data, so a failed case's conclusion uses the fixed hint of its error code.

export interface FhirBundleOptions {
  /** Public base URL of the dxflow API; when set, the bundle links to the case's JSON representation. */
  baseUrl?: string;
  /**
   * Bundle.timestamp. Defaults to the time the result was recorded, not the wall clock, so the same
   * result always maps to the same bundle.
   */
  generatedAt?: string;
}

const REVIEW_NOTICE = 'Preliminary output of investigational AI software: a clinician must review it before any clinical use.';
const INVESTIGATIONAL_NOTE = 'Investigational software for research and demonstration, not a cleared medical device; its output must be reviewed by a clinician.';

interface Entry<T extends Resource> {
  fullUrl: string;
  resource: T;
}

export function toFhirBundle(result: CaseResult, options: FhirBundleOptions = {}): Bundle {
  const urn = (role: string): string => `urn:uuid:${deterministicUuid(result.id, role)}`;
  // When the result was recorded: completion for finished cases, the last update for unfinished ones.
  const recordedAt = result.completedAt === null
    ? toInstant(result.updatedAt, 'updatedAt', result.id)
    : toInstant(result.completedAt, 'completedAt', result.id);
  const kind = reportKindFor(result.pipeline);

  const pipelineDevice: Entry<Device> = { fullUrl: urn('device:pipeline'), resource: pipelineDeviceResource(result.pipeline) };
  const modelDevices = distinctModels(result).map((model) => ({
    model,
    fullUrl: urn(`device:model:${modelKey(model)}`),
    resource: modelDeviceResource(model),
  }));
  // A finding without a model (a rule-based stage) is attributed to the pipeline itself.
  const deviceFor = (model: ModelRef | undefined): Entry<Device> =>
    model === undefined ? pipelineDevice : modelDevices.find((d) => modelKey(d.model) === modelKey(model)) ?? pipelineDevice;

  // A failed case releases no findings: whatever stages ran before the failure produced results that the
  // rest of the pipeline (confidence policy, fallback) never saw, and a cancelled report has no results.
  // The JSON result still lists them for debugging.
  const released = result.status === 'failed' ? [] : result.findings;
  const observationRole = distinctRoles('observation');
  const observations: Entry<Observation>[] = released.map((finding) => ({
    fullUrl: urn(observationRole(JSON.stringify([finding.stage, finding.code]))),
    resource: observationResource(finding, result, kind, recordedAt, deviceFor(finding.model)),
  }));

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
      ...(observations.length > 0 ? { result: observations.map(reference) } : {}),
      conclusion: conclusion(result, released),
    },
  };

  const provenance: Entry<Provenance> = {
    fullUrl: urn('provenance'),
    resource: {
      resourceType: 'Provenance',
      target: [reference(report), ...observations.map(reference)],
      ...(result.completedAt
        ? { occurredPeriod: { start: toInstant(result.createdAt, 'createdAt', result.id), end: recordedAt } }
        : {}),
      recorded: recordedAt,
      activity: { coding: [{ system: V3_DATA_OPERATION, code: 'CREATE', display: 'create' }] },
      agent: [
        agent('assembler', 'Assembler', pipelineDevice),
        ...modelDevices.map((device) => agent('performer', 'Performer', device)),
      ],
      ...(result.input ? { entity: [sourceEntity(result.input)] } : {}),
    },
  };

  const entries: Entry<Resource>[] = [report, ...observations, pipelineDevice, ...modelDevices, provenance];
  return {
    resourceType: 'Bundle',
    identifier: { system: 'urn:ietf:rfc:3986', value: urn('bundle') },
    type: 'collection',
    timestamp: options.generatedAt === undefined ? recordedAt : toInstant(options.generatedAt, 'generatedAt', result.id),
    ...(options.baseUrl === undefined ? {} : { link: [{ relation: 'alternate', url: caseUrl(options.baseUrl, result.id) }] }),
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

function conclusion(result: CaseResult, released: readonly Finding[]): string {
  if (result.status === 'failed') return failureConclusion(result.error);
  const top = topFinding(released);
  if (result.status !== 'succeeded') {
    const sofar = top ? ` Top finding so far: ${describeFinding(top)}.` : '';
    return `The analysis has not finished.${sofar} ${REVIEW_NOTICE}`;
  }
  if (!top) return `The analysis produced no findings. ${REVIEW_NOTICE}`;
  const count = released.length === 1 ? '1 finding' : `${released.length} findings`;
  return `Top finding: ${describeFinding(top)} (${count} in total). ${REVIEW_NOTICE}`;
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

function formatProbability(p: number): string {
  return String(Number(p.toFixed(3)));
}

function findingText(f: Finding): string {
  return f.label.trim() ? `${f.label} (${f.code})` : f.code;
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

/** One Device per model version: the case's model list first, then any finding model it does not list. */
function distinctModels(result: CaseResult): ModelRef[] {
  const byKey = new Map<string, ModelRef>();
  for (const model of [...result.models, ...result.findings.flatMap((f) => (f.model ? [f.model] : []))]) {
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
function sourceEntity(input: InputRecord): ProvenanceEntity {
  const size = input.width && input.height ? `, ${input.width}×${input.height} px` : '';
  return {
    role: 'source',
    what: {
      identifier: { system: DXFLOW_SYSTEM.inputSha256, value: input.sha256 },
      display: `${input.mediaType} input${size}, ${input.bytes} bytes`,
    },
  };
}

function reference<T extends Resource>(entry: Entry<T>): Reference<T> {
  const display = referenceDisplay(entry.resource);
  return { reference: entry.fullUrl, ...(display ? { display } : {}) };
}

function referenceDisplay(resource: Resource): string | undefined {
  if (resource.resourceType !== 'Device') return undefined;
  const name = resource.deviceName?.[0]?.name;
  const version = resource.version?.[0]?.value;
  return name && version ? `${name} ${version}` : name;
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

function caseUrl(baseUrl: string, caseId: string): string {
  try {
    return new URL(`v1/cases/${encodeURIComponent(caseId)}`, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).href;
  } catch (cause) {
    throw new AppError('CONFIG_INVALID', `The public base URL "${baseUrl}" is not an absolute URL; set it like https://dxflow.example.org.`, { cause });
  }
}
