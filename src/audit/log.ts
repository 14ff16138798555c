import { createHash } from 'node:crypto';
import type { Database, SqlExecutor } from '../core/ports.ts';

// The audit trail: FHIR AuditEvent-shaped records (who, what, which case, action, outcome, when, from
// where), appended in one chain. A row's hash is sha256 over the previous row's hash and the row's own
// sequence number, time and event, so `verifyAuditLog` finds the first row that was edited, removed or
// slipped in. Appends are serialised with a transaction-scoped advisory lock: concurrent requests on
// several API instances still form one chain.

export interface AuditEvent {
  /** AuditEvent.action: C create, R read, U update, D delete, E execute; plus the denial subtype below. */
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  /** read | write | export | deny — what the platform did or refused. */
  subtype: 'read' | 'write' | 'export' | 'deny';
  /** AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure. */
  outcome: 0 | 4 | 8;
  agent: { type: 'api-key' | 'anonymous'; id: string | null };
  entity: { type: 'case'; id: string } | null;
  request: { id: string; method: string; route: string; status: number; sourceAddress: string };
}

export interface AuditRecord {
  seq: number;
  recordedAt: string;
  event: AuditEvent;
  prevHash: string;
  hash: string;
}

const GENESIS = '0'.repeat(64);
/** Any constant: the advisory lock that orders appends. */
const APPEND_LOCK = 0x6478666c; // "dxfl"

/** JSON with keys sorted at every level, so that the hash does not depend on key order in storage. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value as Record<string, unknown>).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function auditHash(prevHash: string, seq: number, recordedAt: string, event: unknown): string {
  return createHash('sha256').update(`${prevHash}\n${seq}\n${recordedAt}\n${canonical(event)}`).digest('hex');
}

/** Appends one event; throws when it cannot be written (the caller must then fail the request). */
export async function appendAudit(db: Database, event: AuditEvent): Promise<AuditRecord> {
  return db.transaction(async (tx: SqlExecutor) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [APPEND_LOCK]);
    const [last] = await tx.query<{ seq: string | number; hash: string }>('SELECT seq, hash FROM dxflow_audit ORDER BY seq DESC LIMIT 1');
    const seq = last ? Number(last.seq) + 1 : 1;
    const prevHash = last?.hash ?? GENESIS;
    const recordedAt = new Date().toISOString();
    const hash = auditHash(prevHash, seq, recordedAt, event);
    await tx.query('INSERT INTO dxflow_audit (seq, recorded_at, event, prev_hash, hash) VALUES ($1, $2, $3, $4, $5)', [seq, recordedAt, JSON.stringify(event), prevHash, hash]);
    return { seq, recordedAt, event, prevHash, hash };
  });
}

export type AuditVerification =
  | { intact: true; records: number; head: string }
  | { intact: false; records: number; firstBadSeq: number; problem: string };

/** Walks the chain from the first row; reports the first row whose content, order or link is wrong. */
export async function verifyAuditLog(db: SqlExecutor, pageSize = 1000): Promise<AuditVerification> {
  let prevHash = GENESIS;
  let expected = 1;
  let records = 0;
  for (;;) {
    const rows = await db.query<{ seq: string | number; recorded_at: Date | string; event: unknown; prev_hash: string; hash: string }>(
      'SELECT seq, recorded_at, event, prev_hash, hash FROM dxflow_audit WHERE seq >= $1 ORDER BY seq LIMIT $2', [expected, pageSize]);
    if (rows.length === 0) return { intact: true, records, head: prevHash };
    for (const r of rows) {
      const seq = Number(r.seq);
      if (seq !== expected) return { intact: false, records, firstBadSeq: expected, problem: `record ${expected} is missing (the next one is ${seq})` };
      if (r.prev_hash !== prevHash) return { intact: false, records, firstBadSeq: seq, problem: `record ${seq} does not follow record ${seq - 1} (its link is broken)` };
      const recordedAt = new Date(r.recorded_at).toISOString();
      if (auditHash(prevHash, seq, recordedAt, r.event) !== r.hash) return { intact: false, records, firstBadSeq: seq, problem: `record ${seq} was changed after it was written` };
      prevHash = r.hash;
      expected = seq + 1;
      records++;
    }
  }
}
