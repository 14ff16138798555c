import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseS3Notification } from '../../../pipeline/events.ts';
import type { Platform } from '../../../platform.ts';
import { ErrorResponse, jsonSchema } from '../../schema.ts';

const Outcome = z.object({
  bucket: z.string(),
  key: z.string(),
  caseId: z.string().nullable(),
  duplicate: z.boolean(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});
const Accepted = z.object({ cases: z.array(Outcome) });
const errors = { 400: jsonSchema(ErrorResponse), 401: jsonSchema(ErrorResponse), 500: jsonSchema(ErrorResponse), 503: jsonSchema(ErrorResponse) };

/**
 * S3 and MinIO bucket notifications (point the bucket's webhook here with the API key as bearer token):
 * each new object becomes a queued case of `events.pipeline`; a replayed event returns the case the
 * first delivery made. 202 even when some objects were refused — each outcome says what happened, so the
 * notifier does not retry what can never succeed.
 */
export function eventRoutes(platform: Platform): FastifyPluginAsync {
  return async (app) => {
    app.post('/events/s3', {
      schema: { summary: 'An S3 / MinIO event notification: each ObjectCreated record becomes one case (idempotent)', response: { 202: jsonSchema(Accepted), ...errors } },
    }, async (request, reply) => {
      const events = parseS3Notification(request.body);
      const cases = await platform.events.ingest(events);
      for (const c of cases) {
        if (c.error) request.log.warn({ code: c.error.code }, 'an event object was refused');
      }
      return reply.status(202).send({ cases });
    });
  };
}
