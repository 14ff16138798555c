import { spawnSync } from 'node:child_process';

// OpenSlide as the reference reader, through Debian's python3-openslide. Tests that need it skip with
// a message when it is missing; the platform itself never runs Python.

const PYTHON = '/usr/bin/python3';
const SCRIPT = `
import sys, openslide
path, level, x, y, w, h = sys.argv[1], *map(int, sys.argv[2:])
region = openslide.OpenSlide(path).read_region((x, y), level, (w, h))
sys.stdout.buffer.write(region.tobytes())
`;

export function openSlideMissing(): string | false {
  const probe = spawnSync(PYTHON, ['-c', 'import openslide'], { encoding: 'utf8' });
  return probe.status === 0 ? false : `OpenSlide is not available (${PYTHON} -c "import openslide" failed); install python3-openslide to compare pixels with it`;
}

/** OpenSlide's read_region: non-premultiplied RGBA bytes (PIL "RGBA"), width × height × 4. */
export function openSlideRegion(path: string, level: number, x: number, y: number, width: number, height: number): Buffer {
  const run = spawnSync(PYTHON, ['-c', SCRIPT, path, String(level), String(x), String(y), String(width), String(height)], { maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`openslide read_region failed: ${run.stderr.toString()}`);
  return run.stdout;
}

/** Mean and maximum absolute difference over the pixels OpenSlide reports as opaque, and their count. */
export function compareWithOpenSlide(rgb: Buffer, rgba: Buffer): { mean: number; max: number; opaque: number } {
  let sum = 0;
  let max = 0;
  let opaque = 0;
  for (let p = 0; p * 4 < rgba.length; p++) {
    if (rgba[p * 4 + 3] !== 255) continue;
    opaque++;
    for (let c = 0; c < 3; c++) {
      const d = Math.abs((rgb[p * 3 + c] ?? 0) - (rgba[p * 4 + c] ?? 0));
      sum += d;
      if (d > max) max = d;
    }
  }
  return { mean: opaque === 0 ? 0 : sum / (opaque * 3), max, opaque };
}
