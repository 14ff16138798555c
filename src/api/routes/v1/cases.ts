import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../../core/errors.ts';
import { CaseResult } from '../../../core/result.ts';
import { toFhirBundle } from '../../../fhir/bundle.ts';
import { readCase } from '../../../pipeline/case-store.ts';
import { inputKey } from '../../../pipeline/intake.ts';
import type { Platform } from '../../../platform.ts';
import { errorBody } from '../../errors.ts';
import { ErrorResponse, jsonSchema } from '../../schema.ts';
import { readUpload } from './upload.ts';

const CaseAccepted = z.object({
  id: z.string(),
  status: z.literal('queued'),
  links: z.object({ self: z.string(), fhir: z.string() }),
});
const PipelineQuery = z.object({ pipeline: z.string().regex(/^[a-z][a-z0-9-]*$/).optional() });
const CaseParams = z.object({ id: z.string().uuid() });

const errors = { 400: jsonSchema(ErrorResponse), 401: jsonSchema(ErrorResponse), 404: jsonSchema(ErrorResponse), 409: jsonSchema(ErrorResponse), 413: jsonSchema(ErrorResponse), 415: jsonSchema(ErrorResponse), 422: jsonSchema(ErrorResponse), 500: jsonSchema(ErrorResponse), 503: jsonSchema(ErrorResponse) };

export function caseRoutes(platform: Platform): FastifyPluginAsync {
  const { intake, runner, db, config } = platform;

  async function loadCase(id: string) {
    const parsed = CaseParams.safeParse({ id });
    const result = parsed.success ? await readCase(db, id) : undefined;
    if (!result) throw new AppError('CASE_NOT_FOUND', `No case with id ${id}`);
    return result;
  }

  return async (app) => {
    app.post('/predict', {
      schema: {
        summary: 'Analyse one image synchronously and return the result',
        consumes: ['multipart/form-data'],
        querystring: jsonSchema(PipelineQuery),
        response: { 200: jsonSchema(CaseResult), ...errors },
      },
    }, async (request, reply) => {
      const upload = await readUpload(request);
      const pipeline = upload.pipeline ?? (request.query as z.infer<typeof PipelineQuery>).pipeline ?? config.defaultPipeline;
      const { caseId } = await intake.accept({ bytes: upload.file, pipeline, metadata: upload.metadata, note: upload.note }, { enqueue: false });
      const outcome = await runner.run(caseId, { inputBytes: upload.file, ...(upload.note ? { noteBytes: upload.note } : {}) });
      if (outcome.kind !== 'finished') throw new AppError('INTERNAL', `Case ${caseId} did not finish in the request (${outcome.kind})`);
      const result = outcome.result;
      if (result.status === 'failed' && result.error) {
        const err = new AppError(result.error.code as ConstructorParameters<typeof AppError>[0], result.error.message);
        return reply.status(err.status).send(errorBody(err, { caseId }));
      }
      return result;
    });

    app.post('/cases', {
      schema: {
        summary: 'Submit one image for analysis by the queue; poll the returned case',
        consumes: ['multipart/form-data'],
        querystring: jsonSchema(PipelineQuery),
        response: { 202: jsonSchema(CaseAccepted), ...errors },
      },
    }, async (request, reply) => {
      // Streamed into the store under the new case's key while it arrives; the intake then checks it
      // (reading a slide by ranges, an image whole) and deletes it again if it is refused.
      const caseId = randomUUID();
      const upload = await readUpload(request, {
        maxFileBytes: Math.max(config.limits.maxBytes, config.limits.maxSlideBytes),
        storeFile: (stream) => platform.objects.putStream(inputKey(caseId), stream, { maxBytes: Math.max(config.limits.maxBytes, config.limits.maxSlideBytes) }),
        discard: (stored) => platform.objects.delete(stored.key),
      });
      const pipeline = upload.pipeline ?? (request.query as z.infer<typeof PipelineQuery>).pipeline ?? config.defaultPipeline;
      await intake.acceptStored({ caseId, stored: upload.file, pipeline, metadata: upload.metadata, note: upload.note }, { enqueue: true });
      const self = `/v1/cases/${caseId}`;
      return reply.status(202).header('location', self).send({ id: caseId, status: 'queued', links: { self, fhir: `${self}/fhir` } });
    });

    app.get('/cases/:id', {
      schema: { summary: 'Read a case: status, input, findings, models, timings, error', response: { 200: jsonSchema(CaseResult), ...errors } },
    }, async (request) => loadCase((request.params as { id: string }).id));

    app.get('/cases/:id/files/:name', {
      schema: { summary: 'A file the pipeline derived for the case, e.g. a heatmap overlay PNG', response: { ...errors } },
    }, async (request, reply) => {
      const { id, name } = request.params as { id: string; name: string };
      const result = await loadCase(id);
      // Only derived images (heatmaps, detection crops) are served here: never the input or the note.
      const key = `cases/${result.id}/${name}`;
      const derived = /^(heatmap|crop)-[a-z0-9-]+\.png$/.test(name)
        && (result.explanations.heatmaps.some((h) => h.objectKey === key) || result.detection?.crop?.objectKey === key);
      if (!derived) throw new AppError('OBJECT_NOT_FOUND', `Case ${result.id} has no file named ${name}`);
      return reply.type('image/png').header('cache-control', 'private, max-age=3600').send(await platform.objects.get(key));
    });

    app.get('/cases/:id/fhir', {
      schema: { summary: 'The case result as a FHIR R4 Bundle', response: { ...errors } },
    }, async (request, reply) => {
      const result = await loadCase((request.params as { id: string }).id);
      if (result.status === 'queued' || result.status === 'running') {
        throw new AppError('CASE_NOT_FINISHED', `Case ${result.id} is ${result.status}`);
      }
      return reply.type('application/fhir+json').send(toFhirBundle(result, {}));
    });
  };
}
