import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import type { Platform } from '../platform.ts';
import rateLimit from '@fastify/rate-limit';
import { AppError } from '../core/errors.ts';
import { registerApiKeyAuth, requestAgent } from './auth.ts';
import { registerAudit } from './audit.ts';
import { registerMetrics } from './metrics.ts';
import { registerErrorHandling } from './errors.ts';
import { healthRoutes } from './routes/health.ts';
import { caseRoutes } from './routes/v1/cases.ts';
import { slideRoutes } from './routes/v1/slides.ts';
import { eventRoutes } from './routes/v1/events.ts';
import { dicomWebRoutes } from './routes/dicomweb.ts';

export interface BuildOptions {
  /** A pino logger; without one the app logs nothing (tests). */
  logger?: FastifyBaseLogger;
}

/** Builds the HTTP app without listening, so tests drive it with app.inject(). */
export async function build(platform: Platform, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit: 1024 * 1024,
    requestTimeout: platform.config.limits.requestTimeoutMs,
    genReqId: () => crypto.randomUUID(),
  });
  registerErrorHandling(app);
  await app.register(multipart, {
    throwFileSizeLimit: true,
    limits: { fileSize: platform.config.limits.maxBytes, files: 2, fields: 4, parts: 6, fieldSize: 64 * 1024 },
  });
  // Health checks and metrics (no ids, no case data) answer without a key, as probes and scrapers expect.
  const open = new Set(['/healthz', '/readyz', '/metrics']);
  registerApiKeyAuth(app, { db: platform.db, configuredKey: platform.config.apiKey, publicPaths: open });
  registerAudit(app, { db: platform.db, skipPaths: open });
  // After authentication (preHandler), so that each request is counted against its API key. Requests
  // without a valid key are refused by authentication before they are counted.
  await app.register(rateLimit, {
    hook: 'preHandler',
    max: platform.config.limits.requestsPerMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => {
      const agent = requestAgent(request);
      return agent ? `key:${agent}` : `ip:${request.ip}`;
    },
    allowList: (request) => open.has(request.routeOptions.url ?? ''),
    errorResponseBuilder: (_request, context) => new AppError('RATE_LIMITED', `More than ${context.max} requests in a minute; send again in ${context.after}`),
  });
  registerMetrics(app, { db: platform.db });
  await app.register(healthRoutes(platform));
  await app.register(caseRoutes(platform), { prefix: '/v1' });
  await app.register(slideRoutes(platform), { prefix: '/v1' });
  await app.register(eventRoutes(platform), { prefix: '/v1' });
  await app.register(dicomWebRoutes(platform), { prefix: '/dicomweb' });
  return app;
}
