import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { appendAudit, type AuditEvent } from '../audit/log.ts';
import { AppError } from '../core/errors.ts';
import type { Database } from '../core/ports.ts';
import { requestAgent } from './auth.ts';

// Every read, write, export and denial on the API is audited before the answer leaves: the record is
// appended in onSend, and when it cannot be written the request fails (503) instead of going unrecorded.

const CASE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function caseIdOf(request: FastifyRequest, payload: unknown): string | undefined {
  const fromParams = (request.params as { id?: unknown } | undefined)?.id;
  if (typeof fromParams === 'string' && CASE_ID.test(fromParams)) return fromParams;
  // A case created by this request: its id is in the JSON answer.
  if (typeof payload === 'string' && payload.startsWith('{')) {
    const m = /"id":"([0-9a-f-]{36})"/.exec(payload.slice(0, 200));
    if (m?.[1] && CASE_ID.test(m[1])) return m[1];
  }
  return undefined;
}

export function auditEventOf(request: FastifyRequest, reply: FastifyReply, payload: unknown): AuditEvent {
  const route = request.routeOptions.url ?? request.url.split('?')[0] ?? '';
  const status = reply.statusCode;
  const denied = status === 401 || status === 403;
  const write = request.method !== 'GET' && request.method !== 'HEAD';
  const subtype: AuditEvent['subtype'] = denied ? 'deny' : route.endsWith('/fhir') ? 'export' : write ? 'write' : 'read';
  const agent = requestAgent(request);
  const caseId = caseIdOf(request, payload);
  return {
    action: write ? (route.startsWith('/v1/events') || route === '/v1/predict' || route === '/v1/cases' || route.startsWith('/dicomweb') ? 'C' : 'E') : 'R',
    subtype,
    outcome: status < 400 ? 0 : status < 500 ? 4 : 8,
    agent: agent ? { type: 'api-key', id: agent } : { type: 'anonymous', id: null },
    entity: caseId ? { type: 'case', id: caseId } : null,
    request: { id: String(request.id), method: request.method, route, status, sourceAddress: request.ip },
  };
}

export function registerAudit(app: FastifyInstance, deps: { db: Database; skipPaths: ReadonlySet<string> }): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const route = request.routeOptions.url;
    if (route !== undefined && deps.skipPaths.has(route)) return payload;
    try {
      await appendAudit(deps.db, auditEventOf(request, reply, payload));
    } catch (e) {
      request.log.error({ err: String(e) }, 'the audit record could not be written; the request fails');
      reply.status(503).type('application/json');
      const err = new AppError('DATABASE_UNAVAILABLE', 'The request was not completed because its audit record could not be written; try again');
      return JSON.stringify({ error: { code: err.code, message: err.message, hint: err.hint } });
    }
    return payload;
  });
}
