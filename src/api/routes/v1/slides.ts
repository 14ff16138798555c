import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import sharp from 'sharp';
import { z } from 'zod';
import { AppError } from '../../../core/errors.ts';
import { createDeepZoom, imageSource, type DeepZoom } from '../../../imaging/deepzoom.ts';
import { createSlideCache } from '../../../imaging/wsi/slide-cache.ts';
import { readCase, readInput } from '../../../pipeline/case-store.ts';
import type { Platform } from '../../../platform.ts';
import { ErrorResponse, jsonSchema } from '../../schema.ts';

// Deep Zoom for OpenSeadragon (DESIGN.md §1.1): the slide served tile by tile from its own stored
// pyramid (range reads, nothing converted or copied), and the tile-score heatmap as a second Deep Zoom
// image of exactly the slide's size, transparent outside the scored grid, so that a viewer stacks the
// two with no offset:
//
//   viewer.open([{ tileSource: '/v1/cases/ID/slide.dzi' }, { tileSource: '/v1/cases/ID/heatmap.dzi', opacity: 0.5 }]);
//
// (with `loadTilesWithAjax: true` and the API key in `ajaxHeaders`).

const Params = z.object({ id: z.string().uuid() });
const TileParams = z.object({ id: z.string().uuid(), level: z.coerce.number().int().min(0).max(64), tile: z.string() });
const errors = { 400: jsonSchema(ErrorResponse), 401: jsonSchema(ErrorResponse), 404: jsonSchema(ErrorResponse), 409: jsonSchema(ErrorResponse), 500: jsonSchema(ErrorResponse), 503: jsonSchema(ErrorResponse) };

/** Slides and heatmaps a process keeps ready: a viewer asks for tiles of one case at a time. */
const KEPT = 4;
/** Tiles do not change once the case has them; a viewer may cache them for a day. */
const TILE_CACHE = 'private, max-age=86400';

function tileAddress(tile: string, format: 'jpeg' | 'png'): { col: number; row: number } {
  const m = /^(\d{1,6})_(\d{1,6})\.([a-z]+)$/.exec(tile);
  if (!m || m[3] !== format) throw new AppError('INVALID_REQUEST', `A tile is named <column>_<row>.${format}, not "${tile}"`);
  return { col: Number(m[1]), row: Number(m[2]) };
}

export function slideRoutes(platform: Platform): FastifyPluginAsync {
  const { db, objects } = platform;
  const slides = createSlideCache(objects, KEPT);
  const slideZooms = new Map<string, Promise<DeepZoom>>();
  const heatmapZooms = new Map<string, Promise<DeepZoom>>();

  function remember(cache: Map<string, Promise<DeepZoom>>, key: string, make: () => Promise<DeepZoom>): Promise<DeepZoom> {
    let zoom = cache.get(key);
    if (!zoom) {
      zoom = make();
      zoom.catch(() => cache.delete(key));
      cache.set(key, zoom);
      while (cache.size > KEPT) cache.delete(cache.keys().next().value as string);
    }
    return zoom;
  }

  async function slideZoom(id: string): Promise<DeepZoom> {
    const input = await readInput(db, id);
    if (!input) throw new AppError('CASE_NOT_FOUND', `No case with id ${id}`);
    if (input.mediaType !== 'slide') throw new AppError('OBJECT_NOT_FOUND', `Case ${id} holds a ${input.mediaType} image, not a whole slide; its images are under /v1/cases/${id}/files`);
    return remember(slideZooms, id, async () => createDeepZoom(await slides.get(input.objectKey, input.bytes), { format: 'jpeg' }));
  }

  async function heatmapZoom(id: string): Promise<DeepZoom> {
    return remember(heatmapZooms, id, async () => {
      const result = await readCase(db, id);
      if (!result) throw new AppError('CASE_NOT_FOUND', `No case with id ${id}`);
      const heatmap = result.explanations.heatmaps.find((h) => h.slideRegion);
      if (!heatmap?.slideRegion || !result.input?.width || !result.input.height) {
        if (result.status === 'queued' || result.status === 'running') throw new AppError('CASE_NOT_FINISHED', `Case ${id} is ${result.status}; the heatmap exists once its tiles are scored`);
        throw new AppError('OBJECT_NOT_FOUND', `Case ${id} has no slide heatmap`);
      }
      const { data, info } = await sharp(await objects.get(heatmap.objectKey)).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
      const source = imageSource(
        { data, width: info.width, height: info.height, channels: 4 },
        { size: { width: result.input.width, height: result.input.height }, rect: { x: 0, y: 0, ...heatmap.slideRegion } },
      );
      return createDeepZoom(source, { format: 'png' });
    });
  }

  const sendDzi = (reply: FastifyReply, zoom: DeepZoom) => reply.type('application/xml').header('cache-control', TILE_CACHE).send(zoom.dzi());

  return async (app) => {
    app.get('/cases/:id/slide.dzi', {
      schema: { summary: 'Deep Zoom descriptor of the case\'s whole-slide image (OpenSeadragon)', response: { ...errors } },
    }, async (request, reply) => sendDzi(reply, await slideZoom(parseId(request.params))));

    app.get('/cases/:id/slide_files/:level/:tile', {
      schema: { summary: 'One Deep Zoom tile of the slide, JPEG, read from the stored pyramid', response: { ...errors } },
    }, async (request, reply) => {
      const p = parseTile(request.params);
      const zoom = await slideZoom(p.id);
      const { col, row } = tileAddress(p.tile, 'jpeg');
      return reply.type('image/jpeg').header('cache-control', TILE_CACHE).send(await zoom.tile(p.level, col, row));
    });

    app.get('/cases/:id/heatmap.dzi', {
      schema: { summary: 'Deep Zoom descriptor of the tile-score heatmap, the slide\'s size, to overlay on slide.dzi', response: { ...errors } },
    }, async (request, reply) => sendDzi(reply, await heatmapZoom(parseId(request.params))));

    app.get('/cases/:id/heatmap_files/:level/:tile', {
      schema: { summary: 'One Deep Zoom tile of the heatmap overlay, PNG with transparency', response: { ...errors } },
    }, async (request, reply) => {
      const p = parseTile(request.params);
      const zoom = await heatmapZoom(p.id);
      const { col, row } = tileAddress(p.tile, 'png');
      return reply.type('image/png').header('cache-control', TILE_CACHE).send(await zoom.tile(p.level, col, row));
    });
  };
}

function parseId(params: unknown): string {
  const parsed = Params.safeParse(params);
  if (!parsed.success) throw new AppError('CASE_NOT_FOUND', 'No case with that id');
  return parsed.data.id;
}

function parseTile(params: unknown): z.infer<typeof TileParams> {
  const parsed = TileParams.safeParse(params);
  if (!parsed.success) {
    if (!Params.safeParse(params).success) throw new AppError('CASE_NOT_FOUND', 'No case with that id');
    throw new AppError('INVALID_REQUEST', 'A Deep Zoom tile address is <level>/<column>_<row>.<format> with a level from 0 to 64');
  }
  return parsed.data;
}
