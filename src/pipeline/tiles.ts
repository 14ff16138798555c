import { AppError, toAppError } from '../core/errors.ts';
import type { OnnxManifest } from '../core/manifest.ts';
import type { Database, JobQueue, ObjectStore, SqlExecutor } from '../core/ports.ts';
import type { ModelRef } from '../core/result.ts';
import { chooseLevel, tileGrid } from '../imaging/tile-grid.ts';
import { tissueMask } from '../imaging/wsi-tissue.ts';
import { createSlideCache } from '../imaging/wsi/slide-cache.ts';
import { MAX_REGION_PIXELS, type Slide } from '../imaging/wsi/slide.ts';
import type { ModelCatalog } from '../models/catalog.ts';
import type { RgbImage } from '../models/preprocess.ts';
import { extendWait, readCaseStatus, readInput, recordFailure } from './case-store.ts';
import { RUN_CASE_QUEUE } from './intake.ts';
import {
  doneBatches,
  insertTilePlan,
  readTilePlan,
  readTileScores,
  recordTileBatch,
  type TileGridPlan,
  type TilePlan,
  type TileScore,
} from './tile-store.ts';

// Whole-slide fan-out and fan-in (DESIGN.md §1.1). A slide stage plans its tiles once — tissue mask on a
// low level, tile grid at the model's µm per pixel — stores the tile list as an object, and enqueues one
// job per batch in the same transaction as the plan. Any worker takes a batch, reads its own tiles from
// the original slide by byte range, scores them in one model call and records the scores, the batch and
// the plan's counters in one transaction; the batch that completes the plan enqueues the case again in
// that transaction, and the stage, run again, pools the scores. Nothing is copied: workers share only the
// slide object, the tile list and the database.

export const TILE_BATCH_QUEUE = 'tile-batch';

/** Bytes per tile in the tile list object: (col, row) as little-endian int32. */
const TILE_RECORD_BYTES = 8;
/**
 * The tissue mask is computed on the coarsest level with at least this many pixels on its longer side:
 * a 1000-px mask of a 2 cm biopsy is 20 µm per pixel, fine enough to judge 100-µm tiles, and reading a
 * finer level only costs time (a level 4× larger is 16× the pixels to decode).
 */
const MASK_MIN_SIDE = 1024;

export type TileSettings = NonNullable<OnnxManifest['tiles']>;

export function tileSettings(manifest: OnnxManifest): TileSettings {
  if (!manifest.tiles) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name} has no "tiles" section (mpp, size, scoreClass, pooling), so it cannot score whole slides; add one or choose a tile model`);
  }
  return manifest.tiles;
}

/**
 * Tissue detection and the tile grid: which level-0 tiles to score and the pyramid level to read them
 * from (the coarsest level that still has at least the model's resolution, as OpenSlide's
 * get_best_level_for_downsample chooses). Background tiles are rejected here, from the low-resolution
 * mask, before any level-0 pixel is decoded.
 */
export async function planTileGrid(slide: Slide, settings: TileSettings): Promise<{ grid: TileGridPlan; coords: Int32Array }> {
  const base = slide.levels[0];
  if (!base) throw new AppError('CORRUPT_IMAGE', 'The slide has no pyramid levels.');
  const maskLevel = chooseLevel(slide.levels, Math.max(1, Math.max(base.width, base.height) / MASK_MIN_SIDE));
  const low = slide.levels[maskLevel] as (typeof slide.levels)[number];
  if (low.width * low.height > MAX_REGION_PIXELS) {
    throw new AppError('IMAGE_TOO_LARGE', `The slide's smallest level is ${low.width} × ${low.height} pixels, too large for tissue detection; the slide needs a pyramid (re-save it with reduced levels, e.g. vips tiffsave --pyramid).`);
  }
  const mask = tissueMask(await slide.readRegion(0, 0, maskLevel, low.width, low.height));
  const grid = tileGrid({
    level0Width: base.width,
    level0Height: base.height,
    slideMpp: slide.mpp?.x,
    ...(settings.fallbackMpp === undefined ? {} : { fallbackMpp: settings.fallbackMpp }),
    targetMpp: settings.mpp,
    tileSize: settings.size,
    mask: mask.mask,
    maskWidth: mask.width,
    maskHeight: mask.height,
    minTissueFraction: settings.minTissueFraction,
  });
  const level = chooseLevel(slide.levels, grid.tileSizeLevel0 / settings.size);
  const readSize = Math.max(1, Math.round(grid.tileSizeLevel0 / (slide.levels[level] as (typeof slide.levels)[number]).downsample));
  const coords = new Int32Array(grid.tiles.length * 2);
  grid.tiles.forEach((t, i) => {
    coords[2 * i] = t.col;
    coords[2 * i + 1] = t.row;
  });
  return {
    grid: {
      level0Width: base.width, level0Height: base.height, cols: grid.cols, rows: grid.rows, tileSizeLevel0: grid.tileSizeLevel0,
      mpp: grid.mpp, mppSource: grid.mppSource, level, readSize, rejected: grid.rejected,
    },
    coords,
  };
}

/** Reads tiles of the grid from the slide, in order: each the level-0 square of the grid cell, at the planned level. */
export async function readGridTiles(slide: Slide, grid: TileGridPlan, coords: Int32Array): Promise<RgbImage[]> {
  const images: RgbImage[] = [];
  for (let i = 0; i < coords.length; i += 2) {
    const x = (coords[i] as number) * grid.tileSizeLevel0;
    const y = (coords[i + 1] as number) * grid.tileSizeLevel0;
    images.push(await slide.readRegion(x, y, grid.level, grid.readSize, grid.readSize));
  }
  return images;
}

export interface TileFanOutDeps {
  db: Database;
  objects: ObjectStore;
  queue: JobQueue;
  models: ModelCatalog;
  /** Identifies this process in batch rows. */
  owner: string;
  waitSeconds: number;
}

export interface TileBatchJob {
  caseId: string;
  stage: string;
  batch: number;
}

const batchKey = (caseId: string, stage: string, batch: number) => `${caseId}:${stage}:${batch}`;

/** Slides a worker keeps open: the batches of one slide arrive one after another. */
const OPEN_SLIDES_KEPT = 2;

export function createTileFanOut(deps: TileFanOutDeps) {
  const { db, objects, queue, models } = deps;
  const slides = createSlideCache(objects, OPEN_SLIDES_KEPT);

  async function sendBatches(plan: Pick<TilePlan, 'caseId' | 'stage'>, batches: readonly number[], tx?: SqlExecutor): Promise<void> {
    const jobs = batches.map((batch) => ({ data: { caseId: plan.caseId, stage: plan.stage, batch }, singletonKey: batchKey(plan.caseId, plan.stage, batch) }));
    // Chunks keep each statement's parameters small on very large slides.
    for (let i = 0; i < jobs.length; i += 500) await queue.sendMany(TILE_BATCH_QUEUE, jobs.slice(i, i + 500), tx === undefined ? {} : { tx });
  }

  return {
    plan: (caseId: string, stage: string) => readTilePlan(db, caseId, stage),

    /** Stores the tile list and the plan, and enqueues every batch in the plan's transaction. */
    async start(p: { caseId: string; stage: string; uses: string; seq: number; model: ModelRef; grid: TileGridPlan; coords: Int32Array; batchSize: number }): Promise<TilePlan> {
      const tilesTotal = p.coords.length / 2;
      const batchesTotal = Math.ceil(tilesTotal / p.batchSize);
      const stored = await objects.put(`cases/${p.caseId}/${p.stage}-tiles.bin`, Buffer.from(p.coords.buffer, p.coords.byteOffset, p.coords.byteLength));
      await db.transaction(async (tx) => {
        const inserted = await insertTilePlan(tx, {
          caseId: p.caseId, stage: p.stage, uses: p.uses, seq: p.seq, model: p.model, tilesKey: stored.key, grid: p.grid,
          batchSize: p.batchSize, tilesTotal, batchesTotal,
        });
        if (inserted) await sendBatches(p, Array.from({ length: batchesTotal }, (_, b) => b), tx);
      });
      queue.wake(TILE_BATCH_QUEUE);
      const plan = await readTilePlan(db, p.caseId, p.stage);
      if (!plan) throw new AppError('INTERNAL', `The tile plan of case ${p.caseId} stage ${p.stage} was not stored`);
      return plan;
    },

    /**
     * After a crash or a stall: enqueues the batches not yet counted. On the exclusive queue a batch
     * still queued or running is not duplicated; one that runs twice anyway writes nothing twice.
     */
    async resendMissing(plan: TilePlan): Promise<number> {
      const done = await doneBatches(db, plan.caseId, plan.stage);
      const missing = Array.from({ length: plan.batchesTotal }, (_, b) => b).filter((b) => !done.has(b));
      await sendBatches(plan, missing);
      queue.wake(TILE_BATCH_QUEUE);
      return missing.length;
    },

    scores: (plan: TilePlan): Promise<TileScore[]> => readTileScores(db, plan.caseId, plan.stage, plan.model.sha256),

    /** Scores one batch (a tile-batch job). Safe to run twice, and concurrently with itself. */
    async runBatch(job: TileBatchJob, options: { lastAttempt: boolean } = { lastAttempt: true }): Promise<'scored' | 'skipped'> {
      const t0 = performance.now();
      const plan = await readTilePlan(db, job.caseId, job.stage);
      // The case was deleted, or has already ended (failed elsewhere): nothing to do.
      if (!plan || (await readCaseStatus(db, job.caseId)) !== 'running') return 'skipped';
      if (job.batch < 0 || job.batch >= plan.batchesTotal) throw new AppError('INTERNAL', `Batch ${job.batch} is outside the plan of case ${job.caseId} (${plan.batchesTotal} batches)`);
      try {
        if ((await doneBatches(db, job.caseId, job.stage)).has(job.batch)) return 'skipped';
        const classifier = await models.classifier(plan.model.name);
        if (classifier.ref.sha256 !== plan.model.sha256) {
          throw new AppError('MODEL_CHECKSUM_MISMATCH', `${plan.model.name} changed while the slide was being scored (planned with ${plan.model.version}, sha256 ${plan.model.sha256.slice(0, 12)}…; now ${classifier.ref.version}); submit the slide again`);
        }
        const settings = tileSettings(classifier.manifest);
        const input = await readInput(db, job.caseId);
        if (!input) throw new AppError('INTERNAL', `Case ${job.caseId} has no input record`);
        const first = job.batch * plan.batchSize;
        const last = Math.min(plan.tilesTotal, first + plan.batchSize);
        const raw = await objects.getRange(plan.tilesKey, first * TILE_RECORD_BYTES, last * TILE_RECORD_BYTES);
        const coords = new Int32Array(raw.length / 4);
        for (let i = 0; i < coords.length; i++) coords[i] = raw.readInt32LE(i * 4);
        const slide = await slides.get(input.objectKey, input.bytes);
        const images = await readGridTiles(slide, plan.grid, coords);
        const attentionOutput = settings.pooling.kind === 'attention' ? settings.pooling.output : undefined;
        const { probabilities, extra } = await classifier.classifyBatch(images, attentionOutput);
        const labels = classifier.manifest.outputs.labels;
        const scoreIndex = labels.findIndex((l) => l.code === settings.scoreClass);
        const scores: TileScore[] = images.map((_, i) => ({
          tile: first + i,
          col: coords[2 * i] as number,
          row: coords[2 * i + 1] as number,
          score: probabilities[i * labels.length + scoreIndex] as number,
          attention: extra ? (extra[i] as number) : null,
        }));
        const recorded = await recordTileBatch(db, {
          caseId: job.caseId, stage: job.stage, batch: job.batch, modelSha256: plan.model.sha256, worker: deps.owner,
          durationMs: performance.now() - t0, scores,
        }, async (tx, isLast) => {
          await extendWait(tx, job.caseId, deps.waitSeconds);
          if (isLast) await queue.send(RUN_CASE_QUEUE, { caseId: job.caseId }, { tx });
        });
        if (recorded.last) queue.wake(RUN_CASE_QUEUE);
        return 'scored';
      } catch (e) {
        const err = toAppError(e);
        // A permanent error (a corrupt tile, a changed model), or a transient one on its last attempt,
        // ends the case on the one error path; otherwise the queue retries the batch.
        if (!err.retryable || options.lastAttempt) {
          await recordFailure(db, {
            caseId: job.caseId, owner: deps.owner, stage: plan.stage, uses: plan.uses, seq: plan.seq, attempts: 1,
            durationMs: performance.now() - t0, startedAt: new Date(),
            error: { code: err.code, message: `Tile batch ${job.batch}: ${err.message}`, hint: err.hint },
          });
        }
        throw err;
      }
    },
  };
}

export type TileFanOut = ReturnType<typeof createTileFanOut>;
