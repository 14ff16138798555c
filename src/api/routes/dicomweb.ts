import type { FastifyPluginAsync } from 'fastify';
import { toAppError } from '../../core/errors.ts';
import { buildStowResponse, parseStowRequest, STOW_FAILURE, type StowFailed, type StowStored } from '../../dicom/net/index.ts';
import type { Platform } from '../../platform.ts';

// DICOMweb STOW-RS (PS3.18 §10.5): POST /dicomweb/studies with multipart/related; type="application/dicom".
// The body is read part by part as it arrives (never whole); each instance is de-identified and stored
// like a C-STORE (idempotent by SOP Instance UID and content), and studies become cases once quiet. The
// answer is the Store Instances Response in DICOM JSON: 200 all stored, 202 some failed, 409 none.

/** Failure Reason for an instance that may carry burned-in identity: processing failure (0x0110). */
const REFUSED = STOW_FAILURE.processingFailure;

export function dicomWebRoutes(platform: Platform): FastifyPluginAsync {
  return async (app) => {
    // The body stays a stream for the STOW parser (the multipart plugin handles multipart/form-data only).
    app.addContentTypeParser('multipart/related', (_request, payload, done) => done(null, payload));

    app.post('/studies', async (request, reply) => {
      const parts = parseStowRequest(request.headers['content-type'], request.raw, {
        maxPartBytes: platform.config.limits.maxBytes,
        maxParts: platform.config.dicom.stowMaxParts,
      });
      const stored: StowStored[] = [];
      const failed: StowFailed[] = [];
      for await (const part of parts) {
        try {
          const outcome = await platform.dicom.store(part.bytes);
          if (outcome.status === 'quarantined') {
            failed.push({ failureReason: REFUSED });
            request.log.warn({ part: part.index }, 'a STOW-RS instance was quarantined (possible burned-in text)');
          } else {
            // The de-identified UIDs: the original ones are not kept anywhere.
            stored.push({ sopClassUid: outcome.ids.sopClassUid, sopInstanceUid: outcome.ids.sopInstanceUid });
          }
        } catch (e) {
          const err = toAppError(e);
          if (err.retryable) throw err;
          failed.push({ failureReason: STOW_FAILURE.cannotUnderstand });
          request.log.warn({ part: part.index, code: err.code }, 'a STOW-RS part was refused');
        }
      }
      const response = buildStowResponse({ stored, failed });
      return reply.status(response.status).type('application/dicom+json').send(response.body);
    });
  };
}
