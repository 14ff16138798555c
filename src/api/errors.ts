import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, isAppError, toAppError } from '../core/errors.ts';

// The one place that maps errors to HTTP (DESIGN.md §2).

function fromFastify(e: FastifyError): AppError | undefined {
  switch (e.code) {
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('FILE_TOO_LARGE', 'The upload is larger than the configured limit (DXFLOW_LIMITS_MAX_BYTES)');
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('MISSING_FILE', 'The request must be multipart/form-data with the image in a field named "image"');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('INVALID_REQUEST', e.message);
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new AppError('INVALID_REQUEST', `${e.message}: send one "image" file and at most the "metadata" and "pipeline" fields`);
    default:
      break;
  }
  if (e.validation) return new AppError('INVALID_REQUEST', e.message);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return new AppError('INVALID_REQUEST', e.message);
  return undefined;
}

export function errorBody(err: AppError, extra: { caseId?: string } = {}) {
  return { error: { ...err.toJSON(), ...extra } };
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const err = isAppError(error) ? error : fromFastify(error) ?? toAppError(error);
    if (err.status >= 500) request.log.error({ err: error, code: err.code }, 'request failed');
    else request.log.info({ code: err.code }, 'request refused');
    // Internal details stay in the log; the client gets the code and what to do.
    const safe = err.code === 'INTERNAL' ? new AppError('INTERNAL', `Internal error (request ${request.id})`) : err;
    void reply.status(safe.status).send(errorBody(safe));
  });
  app.setNotFoundHandler((request, reply) => {
    const err = new AppError('ROUTE_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`);
    void reply.status(404).send(errorBody(err));
  });
}
