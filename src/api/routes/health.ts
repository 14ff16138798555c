import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { Platform } from '../../platform.ts';
import { jsonSchema } from '../schema.ts';

const Health = z.object({ status: z.string() });
const Ready = z.object({ status: z.string(), database: z.string(), pipelines: z.array(z.string()) });

export function healthRoutes(platform: Platform): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', { schema: { response: { 200: jsonSchema(Health) } } }, async () => ({ status: 'ok' }));
    app.get('/readyz', { schema: { response: { 200: jsonSchema(Ready), 503: jsonSchema(Ready) } } }, async (_request, reply) => {
      const pipelines = platform.pipelines.list().map((p) => p.name);
      try {
        await platform.db.query('SELECT 1');
        return { status: 'ready', database: platform.db.kind, pipelines };
      } catch {
        return reply.status(503).send({ status: 'unavailable', database: platform.db.kind, pipelines });
      }
    });
  };
}
