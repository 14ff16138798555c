import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chooseLevel, tileGrid } from '../../src/imaging/tile-grid.ts';
import { tissueMask } from '../../src/imaging/wsi-tissue.ts';
import { type FileByteSource, openFileSource } from '../../src/imaging/wsi/byte-source.ts';
import { openSlide, type Slide } from '../../src/imaging/wsi/slide.ts';
import { readManifest } from '../../src/models/manifest.ts';
import { type ImageClassifier, loadOnnxClassifier } from '../../src/models/onnx-classifier.ts';
import type { RgbImage } from '../../src/models/preprocess.ts';

// The bundled demo slide (samples/slide-demo.tif, written by samples/recipe/make_sample_slide.py) must
// make a heatmap that means something: the demo tissue classifier, fed the slide's cells as the slide
// pipeline cuts them, has to find the tumour region the recipe drew (samples/slide-demo.truth.json),
// and the tissue detector has to see the glass as background.

const repoRoot = path.join(import.meta.dirname, '..', '..');
const SLIDE = path.join(repoRoot, 'samples', 'slide-demo.tif');
const TRUTH = path.join(repoRoot, 'samples', 'slide-demo.truth.json');
const MODEL = 'demo-tissue-classifier';
const MIN_ACCURACY = 0.85;
const MIN_GLASS_REJECTED = 0.9;
const BATCH = 32;

interface Truth {
  mpp: number;
  tile: number;
  cols: number;
  rows: number;
  cells: ('g' | 'b' | 't')[][];
}

interface Cell {
  col: number;
  row: number;
  label: 'g' | 'b' | 't';
}

let source: FileByteSource | undefined;
let slide: Slide;
let truth: Truth;
let cells: Cell[];
let classifier: ImageClassifier | undefined;

before(async () => {
  truth = JSON.parse(await readFile(TRUTH, 'utf8')) as Truth;
  cells = truth.cells.flatMap((row, r) => row.map((label, c) => ({ col: c, row: r, label })));
  source = await openFileSource(SLIDE);
  slide = await openSlide(source);
  classifier = await loadOnnxClassifier(await readManifest(path.join(repoRoot, 'models'), MODEL), { intraOpThreads: 2 });
});

after(async () => {
  await classifier?.close();
  await source?.close();
});

function modelOf(): ImageClassifier {
  assert.ok(classifier, 'the demo classifier did not load');
  return classifier;
}

/** Tumour-pattern probability of each cell, reading the cell's level-0 square at `level` as `size` px. */
async function tumourScores(list: readonly Cell[], level: number, size: number): Promise<number[]> {
  const model = modelOf();
  const tumourIndex = model.manifest.outputs.labels.findIndex((l) => l.code === 'tumour-pattern');
  assert.ok(tumourIndex >= 0, 'the demo model has no tumour-pattern label');
  const k = model.manifest.outputs.labels.length;
  const scores: number[] = [];
  for (let start = 0; start < list.length; start += BATCH) {
    const images: RgbImage[] = [];
    for (const cell of list.slice(start, start + BATCH)) {
      images.push(await slide.readRegion(cell.col * truth.tile, cell.row * truth.tile, level, size, size));
    }
    // classifyBatch resizes each image to the model's 96 × 96 as the manifest says (a no-op at 96 px).
    const { probabilities } = await model.classifyBatch(images);
    for (let i = 0; i < images.length; i++) scores.push(probabilities[i * k + tumourIndex] as number);
  }
  return scores;
}

/** Share of tumour cells scored above 0.5 and of benign cells scored below it. */
function accuracy(list: readonly Cell[], scores: readonly number[]): { tumour: number; benign: number; nTumour: number; nBenign: number } {
  let tumourRight = 0;
  let benignRight = 0;
  let nTumour = 0;
  let nBenign = 0;
  list.forEach((cell, i) => {
    const p = scores[i] as number;
    if (cell.label === 't') {
      nTumour++;
      if (p > 0.5) tumourRight++;
    } else {
      nBenign++;
      if (p < 0.5) benignRight++;
    }
  });
  return { tumour: tumourRight / nTumour, benign: benignRight / nBenign, nTumour, nBenign };
}

describe('samples/slide-demo.tif', () => {
  test('is a pyramid at 0.5 µm per pixel whose grid matches the truth file', () => {
    assert.equal(truth.mpp, 0.5);
    assert.equal(truth.tile, 192);
    assert.ok(slide.mpp, 'the slide records no resolution');
    assert.ok(Math.abs(slide.mpp.x - 0.5) < 1e-6 && Math.abs(slide.mpp.y - 0.5) < 1e-6, `mpp ${JSON.stringify(slide.mpp)}`);
    assert.ok(slide.levels.length >= 3, `${slide.levels.length} levels`);
    const base = slide.levels[0];
    assert.ok(base);
    assert.equal(Math.floor(base.width / truth.tile), truth.cols);
    assert.equal(Math.floor(base.height / truth.tile), truth.rows);
    assert.equal(truth.cells.length, truth.rows);
    for (const row of truth.cells) assert.equal(row.length, truth.cols);
    assert.match(base.compression, /JPEG/);
    // A demo heatmap needs both classes and some glass.
    for (const label of ['g', 'b', 't'] as const) assert.ok(cells.filter((c) => c.label === label).length >= 20, `fewer than 20 "${label}" cells`);
  });

  test('the demo classifier finds the tumour cells from level-0 reads resized to 96 × 96', async (t) => {
    const tissue = cells.filter((c) => c.label !== 'g');
    const scores = await tumourScores(tissue, 0, truth.tile);
    const result = accuracy(tissue, scores);
    t.diagnostic(`level 0 (192 px → 96 px): tumour cells > 0.5: ${(100 * result.tumour).toFixed(1)} % of ${result.nTumour}, benign cells < 0.5: ${(100 * result.benign).toFixed(1)} % of ${result.nBenign}`);
    assert.ok(result.tumour >= MIN_ACCURACY, `only ${(100 * result.tumour).toFixed(1)} % of tumour cells score above 0.5`);
    assert.ok(result.benign >= MIN_ACCURACY, `only ${(100 * result.benign).toFixed(1)} % of benign cells score below 0.5`);
  });

  test('… and from the level the slide pipeline reads (the model’s 1.0 µm per pixel, no resize)', async (t) => {
    const tiles = modelOf().manifest.tiles;
    assert.ok(tiles, 'the demo model has no tiles section');
    const tileLevel0 = Math.round((tiles.size * tiles.mpp) / 0.5);
    assert.equal(tileLevel0, truth.tile);
    const level = chooseLevel(slide.levels, tileLevel0 / tiles.size);
    const info = slide.levels[level];
    assert.ok(info && info.downsample === 2, `the pipeline would read level ${level} (downsample ${info?.downsample})`);
    const tissue = cells.filter((c) => c.label !== 'g');
    const result = accuracy(tissue, await tumourScores(tissue, level, tiles.size));
    t.diagnostic(`level ${level} (96 px): tumour cells > 0.5: ${(100 * result.tumour).toFixed(1)} % of ${result.nTumour}, benign cells < 0.5: ${(100 * result.benign).toFixed(1)} % of ${result.nBenign}`);
    assert.ok(result.tumour >= MIN_ACCURACY, `only ${(100 * result.tumour).toFixed(1)} % of tumour cells score above 0.5`);
    assert.ok(result.benign >= MIN_ACCURACY, `only ${(100 * result.benign).toFixed(1)} % of benign cells score below 0.5`);
  });

  test('the tissue mask of a low level sees the glass as background and keeps the tissue', async (t) => {
    const tiles = modelOf().manifest.tiles;
    assert.ok(tiles);
    const base = slide.levels[0];
    assert.ok(base);
    // The level nearest 576 px wide (downsample 8): low enough to be cheap, as a thumbnail would be.
    const level = chooseLevel(slide.levels, 8);
    const low = slide.levels[level];
    assert.ok(low && low.downsample >= 4, `level ${level} is not a low level`);
    const mask = tissueMask(await slide.readRegion(0, 0, level, low.width, low.height));
    const grid = tileGrid({
      level0Width: base.width,
      level0Height: base.height,
      slideMpp: slide.mpp?.x,
      targetMpp: tiles.mpp,
      tileSize: tiles.size,
      mask: mask.mask,
      maskWidth: mask.width,
      maskHeight: mask.height,
      minTissueFraction: tiles.minTissueFraction,
    });
    assert.equal(grid.cols, truth.cols);
    assert.equal(grid.rows, truth.rows);
    const kept = new Set(grid.tiles.map((tile) => `${tile.col},${tile.row}`));
    const glass = cells.filter((c) => c.label === 'g');
    const tissue = cells.filter((c) => c.label !== 'g');
    const glassRejected = glass.filter((c) => !kept.has(`${c.col},${c.row}`)).length / glass.length;
    const tissueKept = tissue.filter((c) => kept.has(`${c.col},${c.row}`)).length / tissue.length;
    t.diagnostic(`level ${level} mask (${mask.width} × ${mask.height}, tissue ${(100 * mask.tissueFraction).toFixed(1)} %): glass cells background ${(100 * glassRejected).toFixed(1)} % of ${glass.length}, tissue cells kept ${(100 * tissueKept).toFixed(1)} % of ${tissue.length}`);
    assert.ok(glassRejected >= MIN_GLASS_REJECTED, `only ${(100 * glassRejected).toFixed(1)} % of glass cells are background`);
    assert.ok(tissueKept >= MIN_GLASS_REJECTED, `only ${(100 * tissueKept).toFixed(1)} % of tissue cells are kept`);
  });
});
