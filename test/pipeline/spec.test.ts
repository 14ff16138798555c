import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import { AppError } from '../../src/core/errors.ts';
import { loadPipelineCatalog, parsePipelineSpec } from '../../src/pipeline/spec.ts';
import { createStageRegistry, defineStage } from '../../src/pipeline/stage.ts';

const registry = createStageRegistry([
  defineStage({
    name: 'test.echo',
    description: 'echo',
    params: z.object({ value: z.number().default(1) }).strict(),
    output: z.object({ value: z.number() }),
    run: async (ctx) => ({ data: { value: ctx.params.value } }),
  }),
]);

const valid = { name: 'demo', version: 1, accepts: ['png'], stages: [{ id: 'a', uses: 'test.echo' }] };

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof AppError);
    return `${e.code}: ${e.message}`;
  }
  assert.fail('expected an error');
}

test('a valid spec is parsed and stage params get their defaults', () => {
  const spec = parsePipelineSpec(valid, 'demo.yaml', registry);
  assert.deepEqual(spec.stages[0]?.with, { value: 1 });
});

test('bad specs fail with the file, the path and the fix', () => {
  assert.match(code(() => parsePipelineSpec({ ...valid, stages: [] }, 'p.yaml', registry)), /^PIPELINE_SPEC_INVALID: p\.yaml: stages: /);
  assert.match(code(() => parsePipelineSpec({ ...valid, accepts: ['gif'] }, 'p.yaml', registry)), /accepts\.0/);
  assert.match(code(() => parsePipelineSpec({ ...valid, stages: [{ id: 'a', uses: 'nope' }] }, 'p.yaml', registry)), /^STAGE_NOT_FOUND: .*uses "nope".*Registered: test\.echo/);
  assert.match(code(() => parsePipelineSpec({ ...valid, stages: [{ id: 'a', uses: 'test.echo', with: { value: 'x' } }] }, 'p.yaml', registry)), /stages\.0 \("a"\) with: value: /);
  assert.match(code(() => parsePipelineSpec({ ...valid, stages: [{ id: 'a', uses: 'test.echo', with: { other: 1 } }] }, 'p.yaml', registry)), /with: .*other/);
  assert.match(code(() => parsePipelineSpec({ ...valid, stages: [{ id: 'a', uses: 'test.echo' }, { id: 'a', uses: 'test.echo' }] }, 'p.yaml', registry)), /duplicate stage id "a"/);
  assert.match(code(() => parsePipelineSpec({ ...valid, stagez: [] }, 'p.yaml', registry)), /stagez/);
});

test('the catalog loads every YAML file, refuses a broken one, and names missing pipelines', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-spec-'));
  await writeFile(path.join(dir, 'demo.yaml'), 'name: demo\nversion: 1\naccepts: [png]\nstages:\n  - id: a\n    uses: test.echo\n');
  const catalog = await loadPipelineCatalog(dir, registry);
  assert.equal(catalog.get('demo').name, 'demo');
  await assert.rejects(async () => catalog.get('other'), (e: AppError) => e.code === 'PIPELINE_NOT_FOUND' && /Available: demo/.test(e.message));

  await writeFile(path.join(dir, 'broken.yaml'), 'name: broken\nversion: 1\naccepts: [png]\nstages:\n  - id: a\n   uses: x\n');
  await assert.rejects(loadPipelineCatalog(dir, registry), (e: AppError) => e.code === 'PIPELINE_SPEC_INVALID' && e.message.includes('broken.yaml'));
});

test('a spec whose name differs from its file name is refused', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-spec-'));
  await writeFile(path.join(dir, 'one.yaml'), 'name: two\nversion: 1\naccepts: [png]\nstages:\n  - id: a\n    uses: test.echo\n');
  await assert.rejects(loadPipelineCatalog(dir, registry), /name is "two" but the file is named "one"/);
});

test('the shipped pipelines load against the built-in stages', async () => {
  const { createBuiltinStages } = await import('../../src/pipeline/stages/index.ts');
  const { createModelCatalog } = await import('../../src/models/catalog.ts');
  const { detachedLlmDeps } = await import('../../src/pipeline/stages/llm-recommend.ts');
  const stages = createBuiltinStages({
    models: createModelCatalog('models', { intraOpThreads: 1 }),
    limits: { maxPixels: 1e6, maxBytes: 1e6 },
    llm: detachedLlmDeps('production'),
  });
  const catalog = await loadPipelineCatalog('pipelines', stages);
  assert.deepEqual(catalog.list().map((p) => p.name).sort(), ['image-classify', 'image-treatment', 'photo-triage', 'wsi-prognosis']);
});
