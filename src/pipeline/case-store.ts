import type { ReportParts } from '../core/report.ts';
import type { CaseError, CaseResult, CaseStatus, Finding, InputRecord, ModelRef, NoteRecord, StageTiming } from '../core/result.ts';
import type { Database, SqlExecutor } from '../core/ports.ts';
import { readTileProgress } from './tile-store.ts';

// All SQL about cases lives here (one module, like pg-boss keeps its SQL together). Functions take the
// executor they should run on, so callers can join them into one transaction.

interface CaseRow {
  id: string;
  tenant: string;
  pipeline: string;
  pipeline_version: number;
  status: CaseStatus;
  error_code: string | null;
  error_message: string | null;
  error_hint: string | null;
  error_stage: string | null;
  lease_owner: string | null;
  lease_until: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
  completed_at: Date | string | null;
}

interface InputRow {
  object_key: string;
  sha256: string;
  bytes: string | number;
  media_type: InputRecord['mediaType'];
  mime_type: string;
  width: number | null;
  height: number | null;
}

export interface CheckpointRow {
  stage: string;
  uses: string;
  seq: number;
  status: 'succeeded' | 'failed' | 'skipped';
  attempts: number;
  output: StoredStageOutput | null;
  duration_ms: number;
  started_at: Date | string;
  finished_at: Date | string;
}

export interface StoredStageOutput {
  data: unknown;
  findings?: Finding[];
  models?: ModelRef[];
  report?: ReportParts;
}

const iso = (v: Date | string | null): string | null => (v === null ? null : new Date(v).toISOString());

export async function insertCase(
  tx: SqlExecutor,
  c: { id: string; pipeline: string; pipelineVersion: number; status: CaseStatus; input: InputRecord; metadata: Record<string, unknown>; note?: NoteRecord | undefined },
): Promise<void> {
  await tx.query(`INSERT INTO dxflow_case (id, pipeline, pipeline_version, status, metadata) VALUES ($1, $2, $3, $4, $5)`, [c.id, c.pipeline, c.pipelineVersion, c.status, JSON.stringify(c.metadata)]);
  const i = c.input;
  await tx.query(
    `INSERT INTO dxflow_input (case_id, object_key, sha256, bytes, media_type, mime_type, width, height)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [c.id, i.objectKey, i.sha256, i.bytes, i.mediaType, i.mimeType, i.width ?? null, i.height ?? null],
  );
  if (c.note) {
    await tx.query(`INSERT INTO dxflow_note (case_id, object_key, sha256, format, bytes) VALUES ($1, $2, $3, $4, $5)`, [c.id, c.note.objectKey, c.note.sha256, c.note.format, c.note.bytes]);
  }
}

export async function readNoteRecord(db: SqlExecutor, id: string): Promise<NoteRecord | undefined> {
  const [row] = await db.query<{ object_key: string; sha256: string; format: 'text' | 'json'; bytes: number | string }>(
    `SELECT object_key, sha256, format, bytes FROM dxflow_note WHERE case_id = $1`, [id]);
  return row ? { objectKey: row.object_key, sha256: row.sha256, format: row.format, bytes: Number(row.bytes) } : undefined;
}

/** Merges what stages contributed to the report, in stage order: later parts win, lists add up. */
export function mergeReportParts(parts: readonly ReportParts[]): Pick<CaseResult, 'detection' | 'clinical' | 'recommendation' | 'explanations' | 'llm' | 'billing'> {
  const merged: Pick<CaseResult, 'detection' | 'clinical' | 'recommendation' | 'explanations' | 'llm' | 'billing'> = {
    detection: null, clinical: null, recommendation: null, explanations: { shap: [], heatmaps: [] }, llm: null, billing: null,
  };
  for (const p of parts) {
    if (p.detection) merged.detection = p.detection;
    if (p.clinical) merged.clinical = p.clinical;
    if (p.recommendation) merged.recommendation = p.recommendation;
    if (p.llm) merged.llm = p.llm;
    if (p.billing) merged.billing = p.billing;
    if (p.shap) merged.explanations.shap.push(...p.shap);
    if (p.heatmaps) merged.explanations.heatmaps.push(...p.heatmaps);
  }
  return merged;
}

/**
 * Takes the case for this worker unless a live lease belongs to another one. Returns the row when taken,
 * undefined when the case is finished or held elsewhere. The lease, not the queue, guarantees that two
 * workers never run the same case at once.
 */
export async function acquireLease(db: SqlExecutor, id: string, owner: string, leaseSeconds: number): Promise<CaseRow | undefined> {
  const rows = await db.query<CaseRow>(
    `UPDATE dxflow_case
        SET status = 'running', lease_owner = $2, lease_until = now() + make_interval(secs => $3),
            attempts = attempts + 1, updated_at = now()
      WHERE id = $1 AND status IN ('queued', 'running')
        AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $2 OR lease_owner IS NULL)
      RETURNING *`,
    [id, owner, leaseSeconds],
  );
  return rows[0];
}

/**
 * A case whose stage waits for fanned-out work (tile batches): nobody holds it (lease_owner NULL), and
 * lease_until is the deadline by which that work must show progress; each counted batch pushes it on
 * (extendWait). Anyone may take a waiting case (the last batch's job does); the sweeper takes it only
 * once the deadline passes, i.e. when the fanned-out work stalled.
 */
export async function markWaiting(db: SqlExecutor, id: string, owner: string, waitSeconds: number): Promise<void> {
  await db.query(
    `UPDATE dxflow_case SET lease_owner = NULL, lease_until = now() + make_interval(secs => $3), updated_at = now()
      WHERE id = $1 AND lease_owner = $2 AND status = 'running'`,
    [id, owner, waitSeconds],
  );
}

export async function extendWait(tx: SqlExecutor, id: string, waitSeconds: number): Promise<void> {
  await tx.query(
    `UPDATE dxflow_case SET lease_until = now() + make_interval(secs => $2), updated_at = now()
      WHERE id = $1 AND lease_owner IS NULL AND status = 'running'`,
    [id, waitSeconds],
  );
}

export async function readCaseStatus(db: SqlExecutor, id: string): Promise<CaseStatus | undefined> {
  const [row] = await db.query<{ status: CaseStatus }>(`SELECT status FROM dxflow_case WHERE id = $1`, [id]);
  return row?.status;
}

export async function renewLease(db: SqlExecutor, id: string, owner: string, leaseSeconds: number): Promise<void> {
  await db.query(`UPDATE dxflow_case SET lease_until = now() + make_interval(secs => $3), updated_at = now() WHERE id = $1 AND lease_owner = $2`, [id, owner, leaseSeconds]);
}

export async function loadCheckpoints(db: SqlExecutor, id: string): Promise<Map<string, CheckpointRow>> {
  const rows = await db.query<CheckpointRow>(`SELECT stage, uses, seq, status, attempts, output, duration_ms, started_at, finished_at FROM dxflow_stage_run WHERE case_id = $1`, [id]);
  return new Map(rows.map((r) => [r.stage, r]));
}

export async function recordStageSuccess(
  db: Database,
  c: { caseId: string; stage: string; uses: string; seq: number; attempts: number; output: StoredStageOutput; durationMs: number; startedAt: Date },
): Promise<void> {
  await db.transaction(async (tx) => {
    // ON CONFLICT DO NOTHING: a stage that somehow ran twice (a lease lost to a pause) keeps the first
    // checkpoint and the first findings; results are never duplicated.
    await tx.query(
      `INSERT INTO dxflow_stage_run (case_id, stage, uses, seq, status, attempts, output, duration_ms, started_at, finished_at)
       VALUES ($1, $2, $3, $4, 'succeeded', $5, $6, $7, $8, now())
       ON CONFLICT (case_id, stage) DO NOTHING`,
      [c.caseId, c.stage, c.uses, c.seq, c.attempts, JSON.stringify(c.output), c.durationMs, c.startedAt],
    );
    for (const f of c.output.findings ?? []) {
      await tx.query(
        `INSERT INTO dxflow_finding (case_id, stage, code, label, probability, model_name, model_version, model_kind, model_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (case_id, stage, code) DO NOTHING`,
        [c.caseId, f.stage, f.code, f.label, f.probability, f.model?.name ?? null, f.model?.version ?? null, f.model?.kind ?? null, f.model?.sha256 ?? null],
      );
    }
  });
}

/** Stages a routing stage decided not to run, recorded so that a resumed case does not run them either. */
export async function recordSkipped(db: SqlExecutor, c: { caseId: string; stages: readonly { stage: string; uses: string; seq: number }[] }): Promise<void> {
  for (const s of c.stages) {
    await db.query(
      `INSERT INTO dxflow_stage_run (case_id, stage, uses, seq, status, attempts, output, duration_ms, started_at, finished_at)
       VALUES ($1, $2, $3, $4, 'skipped', 0, NULL, 0, now(), now())
       ON CONFLICT (case_id, stage) DO NOTHING`,
      [c.caseId, s.stage, s.uses, s.seq],
    );
  }
}

/** The case's caller-supplied metadata (may hold PHI: for stages' decisions, never for results). */
export async function readMetadata(db: SqlExecutor, id: string): Promise<Record<string, unknown>> {
  const [row] = await db.query<{ metadata: Record<string, unknown> | null }>(`SELECT metadata FROM dxflow_case WHERE id = $1`, [id]);
  return row?.metadata ?? {};
}

/** The one error path: the failing stage's checkpoint and the case's error fields, in one transaction. */
export async function recordFailure(
  db: Database,
  c: { caseId: string; owner: string; stage: string | null; uses: string | null; seq: number; attempts: number; durationMs: number; startedAt: Date; error: Omit<CaseError, 'stage'> },
): Promise<void> {
  await db.transaction(async (tx) => {
    if (c.stage !== null && c.uses !== null) {
      await tx.query(
        `INSERT INTO dxflow_stage_run (case_id, stage, uses, seq, status, attempts, output, duration_ms, started_at, finished_at)
         VALUES ($1, $2, $3, $4, 'failed', $5, NULL, $6, $7, now())
         ON CONFLICT (case_id, stage) DO UPDATE SET status = 'failed', attempts = EXCLUDED.attempts, duration_ms = EXCLUDED.duration_ms, finished_at = now()
         WHERE dxflow_stage_run.status = 'failed'`,
        [c.caseId, c.stage, c.uses, c.seq, c.attempts, c.durationMs, c.startedAt],
      );
    }
    await tx.query(
      `UPDATE dxflow_case SET status = 'failed', error_code = $2, error_message = $3, error_hint = $4, error_stage = $5,
              lease_owner = NULL, lease_until = NULL, completed_at = now(), updated_at = now()
        WHERE id = $1 AND status <> 'succeeded' AND (lease_owner = $6 OR lease_owner IS NULL)`,
      [c.caseId, c.error.code, c.error.message, c.error.hint, c.stage, c.owner],
    );
  });
}

export async function markSucceeded(db: SqlExecutor, id: string, owner: string): Promise<void> {
  await db.query(
    `UPDATE dxflow_case SET status = 'succeeded', lease_owner = NULL, lease_until = NULL, completed_at = now(), updated_at = now()
      WHERE id = $1 AND lease_owner = $2 AND status = 'running'`,
    [id, owner],
  );
}

/**
 * Cases a crashed worker left behind: running with an expired (or released) lease. With includeQueued,
 * also every queued case without a live lease — used once at an embedded start, where a job fetched by
 * the dead process but not yet leased would otherwise wait for the queue's own expiry. A periodic sweep
 * must not include queued cases: their jobs are committed with them and still waiting in the queue.
 */
export async function listAbandoned(db: SqlExecutor, options: { includeQueued: boolean }, limit = 100): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM dxflow_case
      WHERE (status = 'running' OR ($1 AND status = 'queued'))
        AND (lease_until IS NULL OR lease_until <= now())
      ORDER BY created_at LIMIT $2`,
    [options.includeQueued, limit],
  );
  return rows.map((r) => r.id);
}

/** Embedded mode only: one process owns the data folder, so every lease at start belongs to a dead run. */
export async function releaseAllLeases(db: SqlExecutor): Promise<number> {
  const rows = await db.query<{ id: string }>(`UPDATE dxflow_case SET lease_owner = NULL, lease_until = NULL WHERE status IN ('queued', 'running') RETURNING id`);
  return rows.length;
}

function toInputRecord(input: InputRow): InputRecord {
  return {
    objectKey: input.object_key,
    sha256: input.sha256,
    bytes: Number(input.bytes),
    mediaType: input.media_type,
    mimeType: input.mime_type,
    ...(input.width !== null ? { width: input.width } : {}),
    ...(input.height !== null ? { height: input.height } : {}),
  };
}

export async function readInput(db: SqlExecutor, id: string): Promise<InputRecord | undefined> {
  const [input] = await db.query<InputRow>(`SELECT * FROM dxflow_input WHERE case_id = $1`, [id]);
  return input ? toInputRecord(input) : undefined;
}

export async function readCase(db: SqlExecutor, id: string): Promise<CaseResult | undefined> {
  const [row] = await db.query<CaseRow & Partial<InputRow>>(
    `SELECT c.*, i.object_key, i.sha256, i.bytes, i.media_type, i.mime_type, i.width, i.height
       FROM dxflow_case c LEFT JOIN dxflow_input i ON i.case_id = c.id WHERE c.id = $1`,
    [id],
  );
  if (!row) return undefined;
  const stages = await db.query<CheckpointRow>(
    `SELECT stage, uses, seq, status, attempts, output, duration_ms, started_at, finished_at FROM dxflow_stage_run WHERE case_id = $1 ORDER BY seq`,
    [id],
  );
  const findingRows = await db.query<{
    stage: string; code: string; label: string; probability: number;
    model_name: string | null; model_version: string | null; model_kind: string | null; model_sha256: string | null;
  }>(`SELECT * FROM dxflow_finding WHERE case_id = $1 ORDER BY probability DESC, code`, [id]);

  const findings: Finding[] = findingRows.map((f) => ({
    stage: f.stage,
    code: f.code,
    label: f.label,
    probability: f.probability,
    ...(f.model_name ? { model: { name: f.model_name, version: f.model_version ?? '', kind: f.model_kind ?? '', sha256: f.model_sha256 ?? '' } } : {}),
  }));
  const note = await readNoteRecord(db, id);
  const models = new Map<string, ModelRef>();
  for (const s of stages) for (const m of s.output?.models ?? []) models.set(`${m.name}@${m.version}`, m);
  const timings: StageTiming[] = stages.map((s) => ({
    stage: s.stage,
    uses: s.uses,
    status: s.status,
    attempts: s.attempts,
    durationMs: Math.round(s.duration_ms * 1000) / 1000,
    startedAt: iso(s.started_at) as string,
    finishedAt: iso(s.finished_at) as string,
  }));
  return {
    id: row.id,
    pipeline: row.pipeline,
    status: row.status,
    createdAt: iso(row.created_at) as string,
    updatedAt: iso(row.updated_at) as string,
    completedAt: iso(row.completed_at),
    input: row.object_key ? toInputRecord(row as CaseRow & InputRow) : null,
    note: note ?? null,
    findings,
    models: [...models.values()],
    timings,
    progress: await readTileProgress(db, id),
    ...mergeReportParts(stages.filter((s) => s.status === 'succeeded').map((s) => s.output?.report ?? {})),
    error: row.error_code
      ? { code: row.error_code, message: row.error_message ?? '', hint: row.error_hint ?? '', stage: row.error_stage }
      : null,
  };
}
