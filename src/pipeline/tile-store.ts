import type { Database, SqlExecutor } from '../core/ports.ts';
import type { ModelRef } from '../core/result.ts';

// All SQL of the whole-slide fan-out (like case-store.ts for cases): tile plans, counted batches and
// idempotent tile scores. Functions take the executor to run on, so callers can join them into one
// transaction.

/** What a tile-batch worker needs to score its tiles without repeating the stage's planning. */
export interface TileGridPlan {
  level0Width: number;
  level0Height: number;
  cols: number;
  rows: number;
  /** Tile side in level-0 pixels. */
  tileSizeLevel0: number;
  mpp: number;
  mppSource: 'slide' | 'fallback';
  /** Pyramid level the tiles are read from, and the region side read there. */
  level: number;
  readSize: number;
  rejected: number;
}

export interface TilePlan {
  caseId: string;
  stage: string;
  /** The stage's `uses` and position, so a batch worker can record a failure against it. */
  uses: string;
  seq: number;
  model: ModelRef;
  /** Object key of the tile list: (col, row) as little-endian int32 pairs, in tile order. */
  tilesKey: string;
  grid: TileGridPlan;
  batchSize: number;
  tilesTotal: number;
  batchesTotal: number;
  tilesDone: number;
  batchesDone: number;
  finishedAt: string | null;
}

interface PlanRow {
  case_id: string;
  stage: string;
  uses: string;
  seq: number;
  model_name: string;
  model_version: string;
  model_sha256: string;
  tiles_key: string;
  grid: TileGridPlan;
  batch_size: number;
  tiles_total: number;
  batches_total: number;
  tiles_done: number;
  batches_done: number;
  finished_at: Date | string | null;
}

function toPlan(r: PlanRow): TilePlan {
  return {
    caseId: r.case_id,
    stage: r.stage,
    uses: r.uses,
    seq: r.seq,
    model: { name: r.model_name, version: r.model_version, kind: 'onnx', sha256: r.model_sha256 },
    tilesKey: r.tiles_key,
    grid: r.grid,
    batchSize: r.batch_size,
    tilesTotal: r.tiles_total,
    batchesTotal: r.batches_total,
    tilesDone: r.tiles_done,
    batchesDone: r.batches_done,
    finishedAt: r.finished_at === null ? null : new Date(r.finished_at).toISOString(),
  };
}

export async function readTilePlan(db: SqlExecutor, caseId: string, stage: string): Promise<TilePlan | undefined> {
  const [row] = await db.query<PlanRow>(`SELECT * FROM dxflow_tile_plan WHERE case_id = $1 AND stage = $2`, [caseId, stage]);
  return row ? toPlan(row) : undefined;
}

/** Inserts the plan unless one exists (a stage re-run after a crash keeps the first plan); true when inserted. */
export async function insertTilePlan(tx: SqlExecutor, p: Omit<TilePlan, 'tilesDone' | 'batchesDone' | 'finishedAt'>): Promise<boolean> {
  const rows = await tx.query(
    `INSERT INTO dxflow_tile_plan (case_id, stage, uses, seq, model_name, model_version, model_sha256, tiles_key, grid, batch_size, tiles_total, batches_total)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (case_id, stage) DO NOTHING RETURNING case_id`,
    [p.caseId, p.stage, p.uses, p.seq, p.model.name, p.model.version, p.model.sha256, p.tilesKey, JSON.stringify(p.grid), p.batchSize, p.tilesTotal, p.batchesTotal],
  );
  return rows.length === 1;
}

export async function doneBatches(db: SqlExecutor, caseId: string, stage: string): Promise<Set<number>> {
  const rows = await db.query<{ batch: number }>(`SELECT batch FROM dxflow_tile_batch WHERE case_id = $1 AND stage = $2`, [caseId, stage]);
  return new Set(rows.map((r) => r.batch));
}

export interface TileScore {
  tile: number;
  col: number;
  row: number;
  score: number;
  attention: number | null;
}

/**
 * Records one batch: its scores (a tile already scored by this model version is left as it is), the
 * batch row and the plan's counters, in one transaction. Returns whether this call counted the batch
 * (false: another run of the same batch got there first) and whether it was the last one;
 * `onCounted` runs inside the same transaction when the batch was counted, so the caller can push the
 * case's deadline on and, after the last batch, enqueue the aggregation atomically with the count.
 */
export async function recordTileBatch(
  db: Database,
  b: { caseId: string; stage: string; batch: number; modelSha256: string; worker: string; durationMs: number; scores: readonly TileScore[] },
  onCounted: (tx: SqlExecutor, last: boolean) => Promise<void>,
): Promise<{ counted: boolean; last: boolean; tilesDone: number }> {
  return db.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO dxflow_tile_score (case_id, stage, model_sha256, tile, col, row, score, attention)
       SELECT $1, $2, $3, u.tile, u.col, u.row, u.score, u.attention
         FROM unnest($4::int[], $5::int[], $6::int[], $7::real[], $8::real[]) AS u(tile, col, row, score, attention)
       ON CONFLICT (case_id, stage, model_sha256, tile) DO NOTHING`,
      [b.caseId, b.stage, b.modelSha256, b.scores.map((s) => s.tile), b.scores.map((s) => s.col), b.scores.map((s) => s.row),
        b.scores.map((s) => s.score), b.scores.map((s) => s.attention)],
    );
    const inserted = await tx.query(
      `INSERT INTO dxflow_tile_batch (case_id, stage, batch, tiles, worker, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (case_id, stage, batch) DO NOTHING RETURNING batch`,
      [b.caseId, b.stage, b.batch, b.scores.length, b.worker, b.durationMs],
    );
    if (inserted.length === 0) return { counted: false, last: false, tilesDone: -1 };
    // The row lock taken here orders concurrent last batches: exactly one of them sees the final count.
    const [plan] = await tx.query<{ batches_done: number; batches_total: number; tiles_done: number }>(
      `UPDATE dxflow_tile_plan SET batches_done = batches_done + 1, tiles_done = tiles_done + $3,
              finished_at = CASE WHEN batches_done + 1 = batches_total THEN now() ELSE NULL END
        WHERE case_id = $1 AND stage = $2 RETURNING batches_done, batches_total, tiles_done`,
      [b.caseId, b.stage, b.scores.length],
    );
    const last = plan !== undefined && plan.batches_done === plan.batches_total;
    await onCounted(tx, last);
    return { counted: true, last, tilesDone: plan?.tiles_done ?? 0 };
  });
}

/** Every score of the plan's model, in tile order. */
export async function readTileScores(db: SqlExecutor, caseId: string, stage: string, modelSha256: string): Promise<TileScore[]> {
  return db.query<TileScore>(
    `SELECT tile, col, row, score, attention FROM dxflow_tile_score WHERE case_id = $1 AND stage = $2 AND model_sha256 = $3 ORDER BY tile`,
    [caseId, stage, modelSha256],
  );
}

export interface TileProgress {
  stage: string;
  tilesDone: number;
  tilesTotal: number;
  batchesDone: number;
  batchesTotal: number;
}

export async function readTileProgress(db: SqlExecutor, caseId: string): Promise<TileProgress[]> {
  const rows = await db.query<{ stage: string; tiles_done: number; tiles_total: number; batches_done: number; batches_total: number }>(
    `SELECT stage, tiles_done, tiles_total, batches_done, batches_total FROM dxflow_tile_plan WHERE case_id = $1 ORDER BY created_at, stage`,
    [caseId],
  );
  return rows.map((r) => ({ stage: r.stage, tilesDone: r.tiles_done, tilesTotal: r.tiles_total, batchesDone: r.batches_done, batchesTotal: r.batches_total }));
}
