// One error type for the whole platform (DESIGN.md §2). Every user-facing failure has a stable code
// listed here, an HTTP status, a retryable flag and a message that says what to do. Exactly one place
// (api/errors.ts) maps it to HTTP; the pipeline runner records it on the case.

export const ERROR_CODES = {
  // Input
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, hint: 'Send a PNG, JPEG, TIFF or DICOM file.' },
  EMPTY_FILE: { status: 422, retryable: false, hint: 'The uploaded file has no bytes; check the upload.' },
  CORRUPT_IMAGE: { status: 422, retryable: false, hint: 'The file starts like an image but cannot be decoded; re-export it from the source system.' },
  TRUNCATED_IMAGE: { status: 422, retryable: false, hint: 'The image ends early; re-upload the complete file.' },
  IMAGE_TOO_LARGE: { status: 422, retryable: false, hint: 'Downscale the image or raise DXFLOW_LIMITS_MAX_PIXELS.' },
  FILE_TOO_LARGE: { status: 413, retryable: false, hint: 'Send a smaller file or raise DXFLOW_LIMITS_MAX_BYTES.' },
  NO_TISSUE: { status: 422, retryable: false, hint: 'No tile of the slide holds enough tissue to score; check that this is the intended slide and that it is not blank or out of focus.' },
  SLIDE_REQUIRES_ASYNC: { status: 422, retryable: false, hint: 'Whole-slide images are analysed in the background: POST them to /v1/cases and follow the case (progress is on GET /v1/cases/:id).' },
  DICOM_PIXELS_UNSUPPORTED: { status: 422, retryable: false, hint: 'This DICOM transfer syntax or pixel layout is not decoded yet; send uncompressed DICOM or a PNG/JPEG export.' },
  DICOM_NO_IMAGE: { status: 422, retryable: false, hint: 'The DICOM object is not an image (a report, plan, directory, waveform…); send an image object of the study instead.' },
  DICOM_TOO_COMPLEX: { status: 422, retryable: false, hint: 'The DICOM file has more elements, or takes longer to read, than any image needs; re-export the image from the source system without the extra data.' },
  DICOM_DEFLATE_BOMB: { status: 422, retryable: false, hint: 'The deflated DICOM data set inflates past DXFLOW_LIMITS_MAX_BYTES; send the file uncompressed (Explicit VR Little Endian) if it is genuine.' },
  DICOM_QUARANTINED: { status: 422, retryable: false, hint: 'The instance may show patient identity in its pixels (burned-in text) and is not released automatically; have a person check and clean the pixels, then send it again.' },
  MISSING_FILE: { status: 400, retryable: false, hint: 'Attach the image as a multipart field named "image".' },
  INVALID_METADATA: { status: 400, retryable: false, hint: 'The "metadata" field must be a JSON object.' },
  INVALID_REQUEST: { status: 400, retryable: false, hint: 'Fix the request as described and send it again.' },
  // Auth
  UNAUTHENTICATED: { status: 401, retryable: false, hint: 'Send the API key printed at start as "Authorization: Bearer <key>" or "X-API-Key".' },
  RATE_LIMITED: { status: 429, retryable: true, hint: 'Too many requests with this API key; wait the seconds given in Retry-After, then send again.' },
  // Resources
  CASE_NOT_FOUND: { status: 404, retryable: false, hint: 'Check the case id returned by POST /v1/cases.' },
  CASE_NOT_FINISHED: { status: 409, retryable: false, hint: 'The case is still being processed; poll GET /v1/cases/:id until status is "succeeded".' },
  CASE_FAILED: { status: 409, retryable: false, hint: 'The case ended with an error; see its "error" field.' },
  ROUTE_NOT_FOUND: { status: 404, retryable: false, hint: 'See the README for the list of endpoints.' },
  // Pipelines and models
  PIPELINE_NOT_FOUND: { status: 400, retryable: false, hint: 'Use one of the pipelines listed by "dxflow pipelines" (files under pipelines/).' },
  PIPELINE_SPEC_INVALID: { status: 500, retryable: false, hint: 'Fix the pipeline YAML as the message says.' },
  STAGE_NOT_FOUND: { status: 500, retryable: false, hint: 'The pipeline names a stage that is not registered; check "uses:" against the stage list in docs/pipelines.md.' },
  STAGE_OUTPUT_INVALID: { status: 500, retryable: false, hint: 'A stage returned data that does not match its declared output; this is a bug in the stage.' },
  MODEL_NOT_FOUND: { status: 500, retryable: false, hint: 'Put the model manifest under models/<name>/manifest.yaml or fix the name in the pipeline.' },
  MODEL_MANIFEST_INVALID: { status: 500, retryable: false, hint: 'Fix the model manifest as the message says.' },
  MODEL_CHECKSUM_MISMATCH: { status: 500, retryable: false, hint: 'The model artifact does not match the sha256 in its manifest; restore the artifact or update the manifest deliberately.' },
  MODEL_INFERENCE_FAILED: { status: 500, retryable: false, hint: 'The model could not run on this input; check the manifest input shape against the artifact.' },
  // Storage
  OBJECT_NOT_FOUND: { status: 404, retryable: false, hint: 'The stored object is missing; check the object store folder or bucket and its retention rules.' },
  MIGRATION_INVALID: { status: 500, retryable: false, hint: 'The migration files and the database disagree; restore the files of the version that migrated it, as the message says.' },
  MIGRATION_FAILED: { status: 500, retryable: false, hint: 'A migration failed and was rolled back; fix the cause named in the message and start again.' },
  // Configuration
  CONFIG_INVALID: { status: 500, retryable: false, hint: 'Fix the named setting in the environment or the config file.' },
  // Infrastructure (transient: retried with back-off)
  STORAGE_UNAVAILABLE: { status: 503, retryable: true, hint: 'The object store could not be reached; the operation will be retried.' },
  DATABASE_UNAVAILABLE: { status: 503, retryable: true, hint: 'The database could not be reached; the operation will be retried.' },
  TIMEOUT: { status: 504, retryable: true, hint: 'The operation took too long; try again.' },
  INTERNAL: { status: 500, retryable: false, hint: 'An unexpected error; the request id in the logs identifies it.' },
  // LLM
  PROMPT_NOT_FOUND: { status: 404, retryable: false, hint: 'List the prompts with "dxflow prompts list"; create one with "dxflow prompts create" or point the label at a version with "dxflow prompts promote".' },
  PROMPT_INVALID: { status: 422, retryable: false, hint: 'Fix the template as the message says; the syntax and the variables are described in prompts/README.md.' },
  LLM_UNAVAILABLE: { status: 503, retryable: true, hint: 'The language-model server could not be reached or failed; the call will be retried. Check DXFLOW_LLM_BASE_URL and that the server is running.' },
  LLM_REQUEST_REJECTED: { status: 502, retryable: false, hint: 'The language-model server refused the request; check DXFLOW_LLM_API_KEY, DXFLOW_LLM_MODEL and DXFLOW_LLM_BASE_URL against the server.' },
  LLM_OUTPUT_INVALID: { status: 502, retryable: false, hint: 'The language model answered with output that does not match the expected JSON; adjust the prompt or the model, or rely on the offline fallback (DXFLOW_LLM_ON_FAILURE=fallback).' },
} as const satisfies Record<string, { status: number; retryable: boolean; hint: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly hint: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown>; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    const spec = ERROR_CODES[code];
    this.status = spec.status;
    this.retryable = options.retryable ?? spec.retryable;
    this.hint = spec.hint;
    this.details = options.details;
  }

  toJSON(): ErrorBody {
    return { code: this.code, message: this.message, hint: this.hint, ...(this.details ? { details: this.details } : {}) };
  }
}

export interface ErrorBody {
  code: string;
  message: string;
  hint: string;
  details?: Record<string, unknown>;
}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

// Network-level failures that are worth retrying even when they do not arrive as an AppError.
const TRANSIENT_SYSTEM_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EBUSY', '57P01', '57P03', '08006', '08001', '40001', '40P01']);

/** Normalises anything thrown into an AppError; unknown errors become INTERNAL (not retried). */
export function toAppError(e: unknown): AppError {
  if (e instanceof AppError) return e;
  const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
  const message = e instanceof Error ? e.message : String(e);
  if (TRANSIENT_SYSTEM_CODES.has(code)) return new AppError('DATABASE_UNAVAILABLE', message, { cause: e, retryable: true });
  return new AppError('INTERNAL', message, { cause: e });
}
