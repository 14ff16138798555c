import { AppError, toAppError } from '../../core/errors.ts';

// Which database failures mean "the server could not be reached or went away" (retry later) rather
// than "this statement is wrong" (do not retry). SQLSTATE classes from PostgreSQL Appendix A.

const LOST_CONNECTION_STATES = new Set([
  '57P01', // admin_shutdown: the server is shutting down or the backend was terminated
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the server is starting up or in recovery
  '53300', // too_many_connections
]);

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

// node-postgres reports a socket that closes or a pool that cannot connect in time as a plain Error
// without a code; these are its messages for those cases.
const LOST_CONNECTION_MESSAGE = /Connection terminated|Connection ended|connection error|is not queryable|timeout exceeded when trying to connect/i;

function codeOf(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
}

export function isLostConnection(e: unknown): boolean {
  if (e instanceof AppError) return e.cause !== undefined && isLostConnection(e.cause);
  if (e instanceof AggregateError && e.errors.some(isLostConnection)) return true;
  const code = codeOf(e);
  if (code.startsWith('08') || LOST_CONNECTION_STATES.has(code) || NETWORK_CODES.has(code)) return true;
  return e instanceof Error && codeOf(e) === '' && LOST_CONNECTION_MESSAGE.test(e.message);
}

function describe(e: unknown): string {
  if (e instanceof AggregateError) return e.errors.map(describe).join('; ');
  const message = e instanceof Error ? e.message : String(e);
  const code = codeOf(e);
  return code && !message.includes(code) ? `${code} ${message}`.trim() : message;
}

/**
 * Turns a failure the database could not help (lost or refused connection, serialisation failure,
 * deadlock) into a retryable AppError DATABASE_UNAVAILABLE. Anything else is returned unchanged, so
 * the caller still sees PostgreSQL's SQLSTATE in `code` (for example 23505 for a unique violation).
 */
export function toDatabaseError(e: unknown, target: string): unknown {
  if (e instanceof AppError) return e;
  if (isLostConnection(e)) {
    return new AppError('DATABASE_UNAVAILABLE', `The database at ${target} is unavailable: ${describe(e)}`, { cause: e, retryable: true });
  }
  const mapped = toAppError(e);
  return mapped.code === 'DATABASE_UNAVAILABLE' ? mapped : e;
}
