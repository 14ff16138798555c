import { z } from 'zod';
import { AppError } from '../../core/errors.ts';
import { poolScores, type PoolingMethod } from '../../core/pooling.ts';
import type { Heatmap } from '../../core/report.ts';
import type { Finding } from '../../core/result.ts';
import { heatmapSize, slideHeatmap } from '../../imaging/slide-heatmap.ts';
import { openSlide } from '../../imaging/wsi/slide.ts';
import type { ModelCatalog } from '../../models/catalog.ts';
import { defineStage } from '../stage.ts';
import { planTileGrid, tileSettings, type TileFanOut } from '../tiles.ts';

/** Tiles listed in the output with their scores: the highest ones, for the report and the viewer. */
const TOP_TILES = 10;

/**
 * A whole slide through a tile model (DESIGN.md §1.1): the first run plans the tiles and hands them to
 * tile-batch workers (the case waits); the run after the last batch pools the tile scores into the
 * slide score (the manifest's rule), draws the heatmap and returns the slide-level probabilities in the
 * same shape as model.classify, so the recommender and the report read a slide like an image.
 */
export function createSlideTilesStage(deps: { models: ModelCatalog; fanOut: TileFanOut | undefined }) {
  return defineStage({
    name: 'slide.tiles',
    description: 'Scores the tissue tiles of a whole-slide image with an ONNX tile model on any number of workers, pools them into a slide score and draws the heatmap.',
    params: z.object({
      model: z.string().min(1),
      /** Tiles per batch job: larger batches amortise the model call, smaller ones spread across workers. */
      batchSize: z.number().int().min(1).max(1024).default(64),
      /** Longer side of the heatmap PNG in pixels. */
      heatmapMaxSide: z.number().int().min(16).max(8192).default(1024),
    }).strict(),
    output: z.object({
      model: z.string(),
      version: z.string(),
      top: z.object({ code: z.string(), probability: z.number() }),
      probabilities: z.record(z.string(), z.number()),
      labels: z.record(z.string(), z.string()),
      minProbability: z.number(),
      slide: z.object({
        level0: z.object({ width: z.number().int(), height: z.number().int() }),
        mpp: z.number(),
        mppSource: z.enum(['slide', 'fallback']),
        tileSizeLevel0: z.number().int(),
        cols: z.number().int(),
        rows: z.number().int(),
        level: z.number().int(),
        tilesScored: z.number().int(),
        tilesRejected: z.number().int(),
        pooling: z.string(),
        scoreClass: z.string(),
        topTiles: z.array(z.object({ col: z.number().int(), row: z.number().int(), x: z.number().int(), y: z.number().int(), score: z.number() })),
      }),
    }),
    async run(ctx) {
      const classifier = await deps.models.classifier(ctx.params.model);
      const settings = tileSettings(classifier.manifest);
      const { fanOut } = deps;
      if (!fanOut) throw new AppError('SLIDE_REQUIRES_ASYNC', `Stage "${ctx.stageId}" scores slide tiles on queue workers, and this run has no queue; submit the slide as a case (POST /v1/cases, or dxflow analyze)`);
      const plan = await fanOut.plan(ctx.caseId, ctx.stageId);
      if (!plan) {
        const slide = await openSlide(ctx.inputSource());
        const { grid, coords } = await planTileGrid(slide, settings);
        if (coords.length === 0) {
          throw new AppError('NO_TISSUE', `No tile of the ${grid.cols} × ${grid.rows} grid (${settings.size} px at ${settings.mpp} µm/px) holds ${Math.round(settings.minTissueFraction * 100)} % tissue; nothing to score`);
        }
        const started = await fanOut.start({
          caseId: ctx.caseId, stage: ctx.stageId, uses: 'slide.tiles', seq: ctx.seq, model: classifier.ref, grid, coords, batchSize: ctx.params.batchSize,
        });
        return { wait: { reason: `scoring ${started.tilesTotal} tiles in ${started.batchesTotal} batches` } };
      }
      if (plan.batchesDone < plan.batchesTotal) {
        // Run again before the work was done: after a restart, or because the batches stalled.
        const resent = await fanOut.resendMissing(plan);
        return { wait: { reason: `${plan.batchesDone} of ${plan.batchesTotal} batches scored; ${resent} sent again` } };
      }

      const scores = await fanOut.scores(plan);
      if (scores.length !== plan.tilesTotal) {
        throw new AppError('INTERNAL', `The slide has ${scores.length} tile scores for ${plan.tilesTotal} planned tiles`);
      }
      const values = Float64Array.from(scores, (s) => s.score);
      const pooling = settings.pooling;
      const method: PoolingMethod = pooling.kind === 'top-k' ? { kind: 'top-k', k: Math.min(pooling.k, values.length) } : { kind: pooling.kind };
      const attention = pooling.kind === 'attention' ? Float64Array.from(scores, (s) => s.attention ?? Number.NaN) : undefined;
      const slideScore = poolScores(method, values, attention);

      const { grid } = plan;
      const size = heatmapSize(grid, ctx.params.heatmapMaxSide);
      const png = await slideHeatmap({ grid: { cols: grid.cols, rows: grid.rows, tiles: scores }, scores: values, ...size });
      const objectKey = await ctx.putObject(`heatmap-${ctx.stageId}.png`.toLowerCase().replace(/[^a-z0-9.-]+/g, '-'), png);

      const labels = classifier.manifest.outputs.labels;
      const scoreLabel = labels.find((l) => l.code === settings.scoreClass) as (typeof labels)[number];
      // A binary model's other class is the complement; with more classes only the pooled one is known.
      const probabilities: Record<string, number> = { [scoreLabel.code]: slideScore };
      const other = labels.length === 2 ? labels.find((l) => l.code !== scoreLabel.code) : undefined;
      if (other) probabilities[other.code] = 1 - slideScore;
      const ranked = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
      const [topCode, topProbability] = ranked[0] as [string, number];
      const findings: Finding[] = ranked.map(([code, probability]) => ({
        stage: ctx.stageId, code, label: labels.find((l) => l.code === code)?.display ?? code, probability, model: classifier.ref,
      }));
      const heatmap: Heatmap = {
        model: classifier.ref.name, label: scoreLabel.code, method: 'tile-scores', objectKey, width: size.width, height: size.height,
        slideRegion: { width: grid.cols * grid.tileSizeLevel0, height: grid.rows * grid.tileSizeLevel0 },
      };
      const topTiles = [...scores].sort((a, b) => b.score - a.score || a.tile - b.tile).slice(0, TOP_TILES)
        .map((s) => ({ col: s.col, row: s.row, x: s.col * grid.tileSizeLevel0, y: s.row * grid.tileSizeLevel0, score: s.score }));
      return {
        data: {
          model: classifier.ref.name,
          version: classifier.ref.version,
          top: { code: topCode, probability: topProbability },
          probabilities,
          labels: Object.fromEntries(labels.map((l) => [l.code, l.display])),
          minProbability: classifier.manifest.confidence.minProbability,
          slide: {
            level0: { width: grid.level0Width, height: grid.level0Height },
            mpp: grid.mpp,
            mppSource: grid.mppSource,
            tileSizeLevel0: grid.tileSizeLevel0,
            cols: grid.cols,
            rows: grid.rows,
            level: grid.level,
            tilesScored: scores.length,
            tilesRejected: grid.rejected,
            pooling: pooling.kind === 'top-k' ? `top-${method.kind === 'top-k' ? method.k : pooling.k}` : pooling.kind,
            scoreClass: scoreLabel.code,
            topTiles,
          },
        },
        findings,
        models: [classifier.ref],
        report: { heatmaps: [heatmap] },
      };
    },
  });
}
