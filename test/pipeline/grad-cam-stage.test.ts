import assert from 'node:assert/strict';
import { copyFile, cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { platformTargets } from '../support/platform.ts';

// A classifier whose head is not linear declares a Grad-CAM head model instead of CAM weights; the
// classify stage must then compute Grad-CAM and say so in the result.
test('model.classify with explain: cam uses Grad-CAM for a model that declares a non-linear head', async (t) => {
  const models = await mkdtemp(path.join(tmpdir(), 'dxflow-gradcam-models-'));
  const pipelines = await mkdtemp(path.join(tmpdir(), 'dxflow-gradcam-pipelines-'));
  const dir = path.join(models, 'demo-tissue-classifier');
  await cp('models/demo-tissue-classifier', dir, { recursive: true });
  await copyFile('test/fixtures/cam/head-mlp.onnx', path.join(dir, 'head-mlp.onnx'));
  const manifest = (await readFile(path.join(dir, 'manifest.yaml'), 'utf8'))
    .replace(/ {2}cam: \{ weights: head\.json \}.*\n/, '  gradCam: { head: head-mlp.onnx, input: features, output: logits }\n');
  assert.match(manifest, /gradCam/);
  await writeFile(path.join(dir, 'manifest.yaml'), manifest);
  await writeFile(path.join(pipelines, 'explained.yaml'), [
    'name: explained', 'version: 1', 'accepts: [png]', 'stages:',
    '  - id: classify', '    uses: model.classify', '    with: { model: demo-tissue-classifier, explain: cam }', '',
  ].join('\n'));

  const [target] = platformTargets();
  const { platform } = await target!.open(t, { DXFLOW_MODELS_DIR: models, DXFLOW_PIPELINES_DIR: pipelines }, { withQueue: false });
  const bytes = await readFile('samples/patch-96-tumour.png');
  const { caseId } = await platform.intake.accept({ bytes, pipeline: 'explained' }, { enqueue: false });
  const out = await platform.runner.run(caseId, { inputBytes: bytes });
  assert.ok(out.kind === 'finished');
  assert.equal(out.result.status, 'succeeded', JSON.stringify(out.result.error));
  const [heatmap] = out.result.explanations.heatmaps;
  assert.equal(heatmap?.method, 'grad-cam');
  const png = await platform.objects.get(heatmap.objectKey);
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.width, meta.height, meta.format], [96, 96, 'png']);
});
