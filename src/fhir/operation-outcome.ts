import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';
import type { ErrorCode } from '../core/errors.ts';
import { DXFLOW_SYSTEM, isErrorCode } from './codes.ts';

// An AppError as a FHIR R4 OperationOutcome. This is the one place where our error codes meet the FHIR
// IssueType value set (http://hl7.org/fhir/ValueSet/issue-type, a required binding).

export type IssueType = OperationOutcomeIssue['code'];

// Exhaustive over ErrorCode, so a new error code does not compile until someone decides its issue type.
// Each entry is the most specific IssueType whose R4 definition describes the failure; the comments
// quote the definition where the choice is not obvious.
const ISSUE_TYPE: Readonly<Record<ErrorCode, IssueType>> = {
  // Input
  UNSUPPORTED_MEDIA_TYPE: 'not-supported',
  EMPTY_FILE: 'required', // the image content is required and absent
  CORRUPT_IMAGE: 'invalid',
  TRUNCATED_IMAGE: 'invalid',
  RATE_LIMITED: 'throttled', // too many requests from one key or address
  NO_TISSUE: 'business-rule', // the slide is valid but holds nothing the model may score
  SLIDE_REQUIRES_ASYNC: 'not-supported', // the synchronous endpoint does not take whole slides
  IMAGE_TOO_LARGE: 'too-costly', // "stopped to protect server resources": decoding would exceed the pixel limit
  FILE_TOO_LARGE: 'too-long', // "provided content is too long (typically, this is a denial of service protection)"
  DICOM_PIXELS_UNSUPPORTED: 'not-supported',
  DICOM_NO_IMAGE: 'not-supported', // a valid DICOM object of a kind (report, plan, directory) that is not an image
  DICOM_TOO_COMPLEX: 'too-costly', // "stopped to protect server resources": too many elements or too long to read
  DICOM_DEFLATE_BOMB: 'too-costly', // inflating the data set would exceed the byte limit
  DICOM_QUARANTINED: 'business-rule', // valid content that the de-identification policy holds back for a person to review
  MISSING_FILE: 'required',
  INVALID_METADATA: 'invalid',
  INVALID_REQUEST: 'invalid',
  // Auth
  UNAUTHENTICATED: 'login',
  // Resources
  CASE_NOT_FOUND: 'not-found',
  CASE_NOT_FINISHED: 'transient', // "may be able to resubmit the same content once an underlying issue is resolved"
  CASE_FAILED: 'processing', // "expected to be final, e.g. there is no point resubmitting the same content unchanged"
  ROUTE_NOT_FOUND: 'not-found',
  // Pipelines and models
  PIPELINE_NOT_FOUND: 'not-found',
  PIPELINE_SPEC_INVALID: 'exception', // our configuration is wrong, not the caller's content
  STAGE_NOT_FOUND: 'not-found',
  STAGE_OUTPUT_INVALID: 'exception',
  MODEL_NOT_FOUND: 'not-found',
  MODEL_MANIFEST_INVALID: 'exception',
  MODEL_CHECKSUM_MISMATCH: 'exception',
  MODEL_INFERENCE_FAILED: 'exception',
  // Storage
  OBJECT_NOT_FOUND: 'not-found',
  MIGRATION_INVALID: 'exception',
  MIGRATION_FAILED: 'exception',
  // Configuration
  CONFIG_INVALID: 'exception',
  // Infrastructure (transient)
  STORAGE_UNAVAILABLE: 'no-store', // "the persistent store is unavailable"
  DATABASE_UNAVAILABLE: 'no-store',
  TIMEOUT: 'timeout',
  INTERNAL: 'exception',
  // LLM
  PROMPT_NOT_FOUND: 'not-found',
  PROMPT_INVALID: 'invalid',
  LLM_UNAVAILABLE: 'transient', // "may be able to resubmit the same content once an underlying issue is resolved"
  LLM_REQUEST_REJECTED: 'exception', // our configuration of the language-model server is wrong, not the caller's content
  LLM_OUTPUT_INVALID: 'exception',
};

/** The FHIR issue type for one of our error codes; `exception` for a code this version does not know. */
export function issueTypeFor(code: string): IssueType {
  return isErrorCode(code) ? ISSUE_TYPE[code] : 'exception';
}

export function toOperationOutcome(error: { code: string; message: string; hint: string }): OperationOutcome {
  const diagnostics = joinSentences(error.message, error.hint);
  const issue: OperationOutcomeIssue = {
    severity: 'error',
    code: issueTypeFor(error.code),
    // FHIR strings may not be empty, so an empty code or text is left out rather than sent as "".
    ...(error.code ? { details: { coding: [{ system: DXFLOW_SYSTEM.error, code: error.code }] } } : {}),
    ...(diagnostics ? { diagnostics } : {}),
  };
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

/** "What happened. What to do." — the message gets a full stop if it has none, so the two read as sentences. */
function joinSentences(message: string, hint: string): string {
  const first = message.trim();
  const second = hint.trim();
  if (!first || !second) return first || second;
  return `${/[.!?]$/.test(first) ? first : `${first}.`} ${second}`;
}
