import { spawnSync } from 'node:child_process';

// openslide-python's DeepZoomGenerator as the reference for src/imaging/deepzoom.ts, run through
// Debian's python3-openslide (see openslide.ts for the availability check). One Python process answers
// a whole request: the descriptor, the geometry of every tile, and the requested tiles themselves.

const PYTHON = '/usr/bin/python3';
const SCRIPT = `
import base64, io, json, sys, time
import openslide
from openslide.deepzoom import DeepZoomGenerator
from PIL import Image

req = json.load(sys.stdin)

class WithProperties:
    # The slide with extra properties (openslide.bounds-*), to exercise limit_bounds on a file that has none.
    def __init__(self, osr, extra):
        self._osr = osr
        self.properties = {**osr.properties, **extra}
    def __getattr__(self, name):
        return getattr(self._osr, name)

osr = WithProperties(openslide.OpenSlide(req['path']), req['properties'])
dz = DeepZoomGenerator(osr, tile_size=req['tileSize'], overlap=req['overlap'], limit_bounds=req['limitBounds'])
out = {
    'dzi': {f: dz.get_dzi(f) for f in ('jpeg', 'png')},
    'levelCount': dz.level_count,
    'levelDimensions': dz.level_dimensions,
    'levelTiles': dz.level_tiles,
    'tileCount': dz.tile_count,
    'coordinates': [],
    'tiles': [],
}
for level in range(dz.level_count):
    cols, rows = dz.level_tiles[level]
    for row in range(rows):
        for col in range(cols):
            (x, y), sl, (w, h) = dz.get_tile_coordinates(level, (col, row))
            zw, zh = dz.get_tile_dimensions(level, (col, row))
            ow, oh = zw, zh
            if (w, h) != (zw, zh):
                # The size get_tile() ends with: thumbnail() of the region read into the nominal size.
                im = Image.new('L', (w, h))
                im.thumbnail((zw, zh), Image.LANCZOS)
                ow, oh = im.size
            out['coordinates'].append([level, col, row, x, y, sl, w, h, zw, zh, ow, oh])
for level, col, row in req['tiles']:
    start = time.perf_counter()
    tile = dz.get_tile(level, (col, row))
    buf = io.BytesIO()
    tile.save(buf, 'jpeg', quality=req['quality'])
    ms = (time.perf_counter() - start) * 1000
    out['tiles'].append({
        'address': [level, col, row],
        'width': tile.size[0],
        'height': tile.size[1],
        'raw': base64.b64encode(tile.tobytes()).decode(),
        'jpeg': base64.b64encode(buf.getvalue()).decode(),
        'ms': ms,
    })
json.dump(out, sys.stdout)
`;

export interface ReferenceRequest {
  path: string;
  tileSize: number;
  overlap: number;
  limitBounds: boolean;
  /** Extra slide properties, e.g. { 'openslide.bounds-x': '100' }. */
  properties?: Record<string, string>;
  /** [level, col, row] of the tiles to render. */
  tiles?: [number, number, number][];
  quality?: number;
}

export interface ReferenceTile {
  address: [number, number, number];
  width: number;
  height: number;
  /** get_tile() pixels, RGB. */
  raw: Buffer;
  /** get_tile() saved as JPEG (PIL, the given quality), as deepzoom_server serves it. */
  jpeg: Buffer;
  ms: number;
}

export interface ReferenceDeepZoom {
  dzi: { jpeg: string; png: string };
  levelCount: number;
  levelDimensions: [number, number][];
  levelTiles: [number, number][];
  tileCount: number;
  /** [level, col, row, x0, y0, slideLevel, regionW, regionH, tileW, tileH, outputW, outputH] for every tile. */
  coordinates: number[][];
  tiles: ReferenceTile[];
}

export function openSlideDeepZoom(request: ReferenceRequest): ReferenceDeepZoom {
  const input = JSON.stringify({ properties: {}, tiles: [], quality: 75, ...request });
  const run = spawnSync(PYTHON, ['-c', SCRIPT], { input, maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`openslide DeepZoomGenerator failed: ${run.stderr.toString()}`);
  const parsed = JSON.parse(run.stdout.toString()) as Omit<ReferenceDeepZoom, 'tiles'> & { tiles: (Omit<ReferenceTile, 'raw' | 'jpeg'> & { raw: string; jpeg: string })[] };
  return { ...parsed, tiles: parsed.tiles.map((t) => ({ ...t, raw: Buffer.from(t.raw, 'base64'), jpeg: Buffer.from(t.jpeg, 'base64') })) };
}
