import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../core/errors.ts';
import type { SqlExecutor } from '../core/ports.ts';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice('Bearer '.length).trim();
  const apiKey = request.headers['x-api-key'];
  return typeof apiKey === 'string' ? apiKey.trim() : undefined;
}

/**
 * API-key authentication on every route except health checks. Keys are stored as sha256 only; the
 * configured key (DXFLOW_API_KEY) is compared in constant time.
 */
/** Who made a request, for the audit trail: the id of the API key used (never the key itself). */
const agents = new WeakMap<FastifyRequest, string>();
export const requestAgent = (request: FastifyRequest): string | undefined => agents.get(request);

export function registerApiKeyAuth(app: FastifyInstance, deps: { db: SqlExecutor; configuredKey?: string | undefined; publicPaths: ReadonlySet<string> }): void {
  const configured = deps.configuredKey ? sha256(deps.configuredKey) : undefined;
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (route === undefined || deps.publicPaths.has(route)) return;
    const key = presentedKey(request);
    if (!key) throw new AppError('UNAUTHENTICATED', 'No API key was sent');
    const digest = sha256(key);
    if (configured && timingSafeEqual(digest, configured)) {
      agents.set(request, 'configured-key');
      return;
    }
    const rows = await deps.db.query<{ id: string }>(`SELECT id FROM dxflow_api_key WHERE key_sha256 = $1 AND revoked_at IS NULL`, [digest.toString('hex')]);
    if (rows.length === 0) throw new AppError('UNAUTHENTICATED', 'The API key is not valid');
    agents.set(request, (rows[0] as { id: string }).id);
  });
}
