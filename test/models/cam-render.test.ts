import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { camForClass } from '../../src/models/cam.ts';
import { DEFAULT_OVERLAY_OPACITY, heatmapColour, renderHeatmapOnly, renderOverlay, upsampleBilinear } from '../../src/models/cam-render.ts';
import { readManifest, readVerifiedArtifact } from '../../src/models/manifest.ts';
import { toInputTensor } from '../../src/models/preprocess.ts';

// Heatmap pictures: colour map, bilinear upsampling, the blend onto the image and the RGBA layer.
// Checked by pixel values and formulas rather than golden PNGs, which break on any encoder change.

async function decodePng(png: Buffer) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.format, 'raw');
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function relativeLuminance([r, g, b]: [number, number, number]): number {
  // sRGB to linear light, then ITU-R BT.709 / sRGB luminance weights (IEC 61966-2-1).
  const linear = (v: number) => (v / 255 <= 0.04045 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
  return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
}

test('the colour map is viridis: its ends, its middle, points between anchors, and luminance that never falls', () => {
  assert.deepEqual(heatmapColour(0), [68, 1, 84]);
  assert.deepEqual(heatmapColour(0.5), [33, 145, 140]);
  assert.deepEqual(heatmapColour(1), [253, 231, 37]);
  // Out-of-range values clamp to the ends rather than wrapping or failing.
  assert.deepEqual(heatmapColour(-0.3), [68, 1, 84]);
  assert.deepEqual(heatmapColour(7), [253, 231, 37]);
  // Between anchors, against matplotlib's 256-entry viridis table (entries 25, 100, 200, 240).
  const reference: [number, [number, number, number]][] = [[25, [72, 36, 117]], [100, [42, 118, 142]], [200, [112, 207, 87]], [240, [216, 226, 25]]];
  for (const [index, rgb] of reference) {
    const got = heatmapColour(index / 255);
    got.forEach((v, c) => assert.ok(Math.abs(v - rgb[c]!) <= 2, `entry ${index}: ${got} vs ${rgb}`));
  }
  // Perceptual order: more evidence is never darker (8-bit rounding leaves a few neighbouring entries
  // equal, as in matplotlib's own table), and lighter over every 1/32 of the range.
  const luminance = Array.from({ length: 256 }, (_, i) => relativeLuminance(heatmapColour(i / 255)));
  luminance.forEach((y, i) => {
    if (i > 0) assert.ok(y >= luminance[i - 1]!, `luminance falls at entry ${i}`);
    if (i >= 8) assert.ok(y > luminance[i - 8]!, `luminance flat over entries ${i - 8}..${i}`);
  });
});

test('bilinear upsampling aligns pixel centres, clamps at the edges and never overshoots', () => {
  // A 1 × 2 map [0, 1] to width 4: output centres map to −0.25, 0.25, 0.75, 1.25 in map pixels.
  assert.deepEqual(Array.from(upsampleBilinear(Float32Array.from([0, 1]), [1, 2], 4, 1)), [0, 0.25, 0.75, 1]);
  // Same size is the identity; a constant map stays constant.
  const map = Float32Array.from([0.1, 0.9, 0.4, 0.6, 0, 1]);
  assert.deepEqual(Array.from(upsampleBilinear(map, [2, 3], 3, 2)), Array.from(map));
  assert.ok(upsampleBilinear(new Float32Array(4).fill(0.7), [2, 2], 37, 23).every((v) => Math.abs(v - 0.7) < 1e-7));
  // A single hot cell: values stay within the map's range (no ringing), and the peak stays in its quadrant.
  const spot = new Float32Array(16);
  spot[1 * 4 + 2] = 1;
  const up = upsampleBilinear(spot, [4, 4], 64, 64);
  assert.ok(up.every((v) => v >= 0 && v <= 1));
  const peak = up.indexOf(Math.max(...up));
  assert.deepEqual([peak % 64 >> 4, Math.floor(peak / 64) >> 4], [2, 1]);
});

test('overlay: the image size, the blend formula at every pixel, and opacity 0 and 1', async () => {
  // A 40 × 30 grey ramp under a 3 × 4 map with one strong cell.
  const width = 40;
  const height = 30;
  const image = { data: Buffer.alloc(width * height * 3), width, height };
  for (let i = 0; i < width * height; i++) image.data.fill((i * 7) % 256, i * 3, i * 3 + 3);
  const map = Float32Array.from([0, 0, 0, 0, 0, 0, 1, 0.5, 0, 0, 0.25, 0]);
  const dims = [3, 4] as const;
  const values = upsampleBilinear(map, dims, width, height);

  const overlay = await decodePng(await renderOverlay(image, map, dims));
  assert.deepEqual([overlay.width, overlay.height, overlay.channels], [width, height, 3]);
  for (let p = 0; p < width * height; p++) {
    const colour = heatmapColour(values[p] as number);
    for (let c = 0; c < 3; c++) {
      const expected = (1 - DEFAULT_OVERLAY_OPACITY) * (image.data[p * 3 + c] as number) + DEFAULT_OVERLAY_OPACITY * colour[c]!;
      assert.ok(Math.abs((overlay.data[p * 3 + c] as number) - expected) <= 0.5, `pixel ${p} channel ${c}`);
    }
  }
  // Where the map is strongest the picture is pulled towards yellow.
  const hot = values.indexOf(Math.max(...values));
  assert.ok((overlay.data[hot * 3 + 1] as number) > 0.45 * 231, 'green of the hot spot');

  assert.deepEqual((await decodePng(await renderOverlay(image, map, dims, { opacity: 0 }))).data, image.data);
  const full = await decodePng(await renderOverlay(image, map, dims, { opacity: 1 }));
  assert.deepEqual([...full.data.subarray(hot * 3, hot * 3 + 3)], heatmapColour(values[hot] as number));
  assert.equal(values[0], 0);
  assert.deepEqual([...full.data.subarray(0, 3)], heatmapColour(0));
});

test('heatmap-only layer: RGBA of the requested size, transparent where there is no evidence', async () => {
  const map = Float32Array.from([0, 1, 0.5, 0]);
  const png = await decodePng(await renderHeatmapOnly(map, [2, 2], 8, 8));
  assert.deepEqual([png.width, png.height, png.channels], [8, 8, 4]);
  // Corner pixels clamp to the map's corner cells.
  assert.deepEqual([...png.data.subarray(0, 4)], [...heatmapColour(0), 0]); // top left: 0
  const topRight = 7 * 4;
  assert.deepEqual([...png.data.subarray(topRight, topRight + 4)], [...heatmapColour(1), 255]); // top right: 1
  const bottomLeft = 7 * 8 * 4;
  assert.deepEqual([...png.data.subarray(bottomLeft, bottomLeft + 4)], [...heatmapColour(0.5), 128]);
});

test('rendering refuses maps and images that do not fit, with codes', async () => {
  const image = { data: Buffer.alloc(12), width: 2, height: 2 };
  const refused = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      assert.ok(e instanceof AppError, String(e));
      return e.message;
    }
    assert.fail('expected an AppError');
  };
  assert.match(await refused(() => renderOverlay(image, new Float32Array(3), [2, 2])), /holds 3 values, not 2 × 2/);
  assert.match(await refused(() => renderOverlay({ ...image, width: 3 }, new Float32Array(4), [2, 2])), /RGB buffer holds 12 bytes, not 3 × 2 × 3/);
  assert.match(await refused(() => renderOverlay(image, Float32Array.from([0, Number.NaN, 0, 0]), [2, 2])), /NaN or infinite/);
  assert.match(await refused(() => renderOverlay(image, new Float32Array(4), [2, 2], { opacity: 1.5 })), /opacity must be between 0 and 1/);
  assert.match(await refused(() => renderHeatmapOnly(new Float32Array(4), [2, 2], 0, 5)), /Target size must be positive/);
});

test('demo model: the tumour-pattern CAM overlay of the tumour sample changes the image where the map is high', async () => {
  const loaded = await readManifest('models', 'demo-tissue-classifier');
  const { manifest } = loaded;
  assert.ok(manifest.kind === 'onnx');
  const { data, info } = await sharp('samples/patch-96-tumour.png').removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const image = { data, width: info.width, height: info.height };
  const input = await toInputTensor(image, manifest.inputs.preprocess);
  const session = await ort.InferenceSession.create(await readVerifiedArtifact(loaded), { intraOpNumThreads: 1 });
  let features: ort.Tensor | undefined;
  try {
    features = (await session.run({ image: new ort.Tensor('float32', input.data, input.dims) }, ['features']))['features'];
  } finally {
    await session.release();
  }
  assert.ok(features);
  const head = JSON.parse(await readFile('models/demo-tissue-classifier/head.json', 'utf8')) as { weight: number[][]; labels: string[] };
  const cam = camForClass(features.data as Float32Array, features.dims, head, head.labels.indexOf('tumour-pattern'));

  const overlay = await decodePng(await renderOverlay(image, cam.map, [cam.height, cam.width]));
  assert.deepEqual([overlay.width, overlay.height, overlay.channels], [96, 96, 3]);
  const values = upsampleBilinear(cam.map, [cam.height, cam.width], 96, 96);
  const hot = values.indexOf(Math.max(...values));
  const shift = (p: number) => [0, 1, 2].reduce((s, c) => s + Math.abs((overlay.data[p * 3 + c] as number) - (image.data[p * 3 + c] as number)), 0);
  // At the strongest evidence the pixel moves towards viridis yellow, by the blend formula.
  const yellow = heatmapColour(values[hot] as number);
  for (let c = 0; c < 3; c++) {
    const expected = (1 - DEFAULT_OVERLAY_OPACITY) * (image.data[hot * 3 + c] as number) + DEFAULT_OVERLAY_OPACITY * yellow[c]!;
    assert.ok(Math.abs((overlay.data[hot * 3 + c] as number) - expected) <= 0.5);
  }
  assert.ok(shift(hot) > 60, `the hot spot moved by only ${shift(hot)} levels`);
  assert.ok(values[hot]! > 0.9);
});
