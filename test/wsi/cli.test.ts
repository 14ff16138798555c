import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { slideCommand, slideInfo } from '../../src/cli/slide.ts';

let dir = '';
before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'dxflow-slide-cli-')); });
after(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }); });

function capture(): { write(text: string): boolean; text: () => string } {
  let text = '';
  return { write: (t: string) => { text += t; return true; }, text: () => text };
}

test('synth, info and region round-trip through the command', async () => {
  const file = path.join(dir, 'slide.tif');
  const out = capture();
  assert.equal(await slideCommand(['synth', file, '--width', '1200', '--height', '900', '--tile-size', '128', '--compression', 'lzw', '--bigtiff', '--mpp', '0.5'], { out }), 0);
  assert.match(out.text(), /wrote .*slide\.tif \(1200×900, lzw\)/);

  const info = await slideInfo(file);
  assert.equal(info.vendor, 'generic-tiff');
  assert.deepEqual(info.levels.map((l) => [l.width, l.height, l.downsample, l.tileWidth]), [[1200, 900, 1, 128], [600, 450, 2, 128], [300, 225, 4, 128], [150, 112, (8 + 900 / 112) / 2, 128], [75, 56, (16 + 900 / 56) / 2, 128]]);
  assert.ok(Math.abs((info.mpp?.x ?? 0) - 0.5) < 1e-6);

  const table = capture();
  assert.equal(await slideCommand(['info', file], { out: table }), 0);
  assert.match(table.text(), /generic-tiff/);
  assert.match(table.text(), /^1 +600 +450 +2\.000 +128×128 +LZW/m);
  const json = capture();
  assert.equal(await slideCommand(['info', file, '--json'], { out: json }), 0);
  assert.deepEqual(JSON.parse(json.text()).levels, info.levels);

  const png = path.join(dir, 'region.png');
  assert.equal(await slideCommand(['region', file, '--level', '1', '--x', '1000', '--y', '700', '--width', '300', '--height', '250', '--out', png], { out: capture() }), 0);
  const { data, info: meta } = await sharp(await readFile(png)).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([meta.width, meta.height, meta.channels], [300, 250, 3]);
  // Level 1 pixel (500 + 299, 350 + 10) is past the 600-pixel width: white.
  assert.deepEqual([...data.subarray((10 * 300 + 299) * 3, (10 * 300 + 299) * 3 + 3)], [255, 255, 255]);
});

test('usage mistakes exit 2 with the usage line; a missing file is an AppError', async () => {
  for (const args of [[], ['frobnicate'], ['info'], ['region', 'x.tif', '--x', '1'], ['synth', 'o.tif', '--width', 'ten', '--height', '5'], ['info', 'a', '--nope']]) {
    const err = capture();
    assert.equal(await slideCommand(args, { out: capture(), err }), 2, args.join(' '));
    assert.match(err.text(), /^dxflow slide: .*\n\nUsage: dxflow slide info/);
  }
  await assert.rejects(slideCommand(['info', path.join(dir, 'missing.svs')]), (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST' && /missing\.svs/.test(e.message));
});

test('the issue’s spelling works too: synth --out FILE and info --format json', async () => {
  const file = path.join(dir, 'spelled.tif');
  assert.equal(await slideCommand(['synth', '--width', '600', '--height', '400', '--out', file], { out: capture() }), 0);
  const json = capture();
  assert.equal(await slideCommand(['info', file, '--format', 'json'], { out: json }), 0);
  assert.deepEqual(JSON.parse(json.text()).levels[0], (await slideInfo(file)).levels[0]);
  const err = capture();
  assert.equal(await slideCommand(['info', file, '--format', 'xml'], { out: capture(), err }), 2);
  assert.match(err.text(), /--format must be json or text/);
});
