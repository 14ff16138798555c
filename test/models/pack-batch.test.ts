import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packBatch, toInputTensor, type RgbImage } from '../../src/models/preprocess.ts';

const preprocess = {
  resize: { width: 8, height: 6, fit: 'fill' as const }, colour: 'rgb' as const, scale: 255,
  mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], layout: 'nchw' as const,
};

function image(width: number, height: number, pixel: (x: number, y: number, c: number) => number): RgbImage {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = pixel(x, y, c);
  return { data, width, height };
}

const close = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Math.abs(v - (b[i] as number)) < 1e-5);

test('packBatch lays tiles of the model size out as toInputTensor does, one after another', async () => {
  const a = image(8, 6, (x, y, c) => (x * 30 + y * 7 + c * 50) % 256);
  const b = image(8, 6, (x, y, c) => (255 - x * 11 - c * 3) % 256);
  const { data, dims } = await packBatch([a, b], preprocess);
  assert.deepEqual(dims, [2, 3, 6, 8]);
  const one = (await toInputTensor(a, preprocess)).data;
  const two = (await toInputTensor(b, preprocess)).data;
  assert.ok(close(data.subarray(0, one.length), one));
  assert.ok(close(data.subarray(one.length), two));
});

test('a tile at 2× or 3× the model size is reduced by block means', async () => {
  const small = image(8, 6, (x, y, c) => (x * 29 + y * 13 + c * 71) % 256);
  for (const k of [2, 3]) {
    // Every k × k block holds one colour, so its mean is exactly the small image's pixel.
    const big = image(8 * k, 6 * k, (x, y, c) => small.data[(Math.floor(y / k) * 8 + Math.floor(x / k)) * 3 + c] as number);
    const { data } = await packBatch([big], preprocess);
    assert.ok(close(data, (await toInputTensor(small, preprocess)).data), `factor ${k}`);
  }
  // A block of two values averages them (rounded), not picks one.
  const checker = image(16, 12, (x, y) => ((x + y) % 2 === 0 ? 0 : 200));
  const { data } = await packBatch([checker], preprocess);
  const expected = (100 / 255 - 0.485) / 0.229;
  assert.ok(Math.abs((data[0] as number) - expected) < 1e-5);
});

test('other sizes are resized as the manifest says', async () => {
  const odd = image(10, 7, (x, y, c) => (x * 17 + y * 5 + c) % 256);
  const { data, dims } = await packBatch([odd], preprocess);
  assert.deepEqual(dims, [1, 3, 6, 8]);
  assert.ok(close(data, (await toInputTensor(odd, preprocess)).data));
});
