import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import type { CaseResult } from '../core/result.ts';
import { readCase } from '../pipeline/case-store.ts';
import { inputKey } from '../pipeline/intake.ts';
import { startCaseWorker } from '../worker/run-case.ts';
import type { Config } from '../core/config.ts';
import { AppError } from '../core/errors.ts';
import { toFhirBundle } from '../fhir/bundle.ts';
import { openPlatform, type Platform } from '../platform.ts';

/** Runs one file through a pipeline in a throw-away embedded platform; prints JSON or a FHIR Bundle. */
export interface AnalyzeRequest {
  file: string;
  pipeline: string;
  format: 'json' | 'fhir';
  /** A clinical note file: free text or a JSON object. */
  note?: string | undefined;
}

async function readInputFile(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch {
    throw new AppError('MISSING_FILE', `Cannot read the ${what} ${file}`);
  }
}

/** True when the file starts like a TIFF (classic or BigTIFF, either byte order). */
async function startsLikeTiff(file: string): Promise<boolean> {
  const head = Buffer.alloc(4);
  try {
    const handle = await open(file, 'r');
    try {
      await handle.read(head, 0, 4, 0);
    } finally {
      await handle.close();
    }
  } catch {
    throw new AppError('MISSING_FILE', `Cannot read the image ${file}`);
  }
  return ['II*\0', 'MM\0*', 'II+\0', 'MM\0+'].includes(head.toString('latin1'));
}

/**
 * A whole slide runs as a queued case with tile-batch workers in this process, exactly as under
 * `dxflow serve`; the slide is streamed into the store (never read whole) and progress is reported on
 * stderr as tiles are scored.
 */
async function analyzeSlide(platform: Platform, request: AnalyzeRequest, note: Buffer | undefined): Promise<CaseResult> {
  const { config } = platform;
  const quiet = { info() {}, warn() {}, error() {} };
  const caseId = randomUUID();
  const stored = await platform.objects.putStream(inputKey(caseId), createReadStream(request.file), { maxBytes: config.limits.maxSlideBytes });
  await platform.intake.acceptStored({ caseId, stored, pipeline: request.pipeline, note }, { enqueue: true });
  const worker = await startCaseWorker(platform, quiet);
  try {
    let reported = -1;
    for (;;) {
      const result = await readCase(platform.db, caseId);
      if (!result) throw new AppError('CASE_NOT_FOUND', `Case ${caseId} disappeared`);
      const finished = result.status === 'succeeded' || result.status === 'failed';
      const p = result.progress[0];
      // The last line always says where the tiles ended, even when the case finished between two looks.
      if (p && p.tilesTotal > 0 && (!finished || reported < 10)) {
        const percent = Math.floor((100 * p.tilesDone) / p.tilesTotal);
        // On a terminal one line that updates; in a log every tenth.
        if (process.stderr.isTTY) process.stderr.write(`\rtiles ${p.tilesDone}/${p.tilesTotal} (${percent} %)`);
        else if (Math.floor(percent / 10) > reported) process.stderr.write(`tiles ${p.tilesDone}/${p.tilesTotal} (${percent} %)\n`);
        reported = Math.floor(percent / 10);
      }
      if (finished) return result;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    if (process.stderr.isTTY) process.stderr.write('\n');
    await worker.stop();
  }
}

export async function analyzeFile(config: Config, request: AnalyzeRequest): Promise<number> {
  const { file, pipeline, format } = request;
  const note = request.note ? await readInputFile(request.note, 'note') : undefined;
  const progress = (msg: string) => { if (process.stderr.isTTY) process.stderr.write(`${msg}\n`); };
  progress(`analysing ${file} with pipeline ${pipeline}…`);
  let result: CaseResult;
  const tiff = await startsLikeTiff(file);
  // A queue (and its workers) only where a whole slide may need one.
  const platform = await openPlatform(config, { withQueue: tiff });
  try {
    if (tiff && platform.pipelines.get(pipeline).accepts.includes('slide')) {
      result = await analyzeSlide(platform, request, note);
    } else {
      const bytes = await readInputFile(file, 'image');
      const { caseId } = await platform.intake.accept({ bytes, pipeline, note }, { enqueue: false });
      const outcome = await platform.runner.run(caseId, { inputBytes: bytes, ...(note ? { noteBytes: note } : {}) });
      if (outcome.kind !== 'finished') throw new AppError('INTERNAL', 'the case was not run');
      result = outcome.result;
    }
  } finally {
    await platform.close();
  }
  process.stdout.write(`${JSON.stringify(format === 'fhir' ? toFhirBundle(result, {}) : result, null, 2)}\n`);
  if (result.status === 'failed' && result.error) {
    process.stderr.write(`dxflow: ${result.error.code} in stage ${result.error.stage ?? '-'}: ${result.error.message}\nhint: ${result.error.hint}\n`);
    return 1;
  }
  return 0;
}

export async function listPipelines(config: Config): Promise<number> {
  const { createModelCatalog } = await import('../models/catalog.ts');
  const { createBuiltinStages } = await import('../pipeline/stages/index.ts');
  const { loadPipelineCatalog } = await import('../pipeline/spec.ts');
  const { detachedLlmDeps } = await import('../pipeline/stages/llm-recommend.ts');
  const stages = createBuiltinStages({
    models: createModelCatalog(config.modelsDir, { intraOpThreads: 1 }),
    limits: config.limits,
    llm: detachedLlmDeps(config.llm.promptLabel),
  });
  const catalog = await loadPipelineCatalog(config.pipelinesDir, stages);
  process.stdout.write('Pipelines:\n');
  for (const p of catalog.list()) {
    process.stdout.write(`  ${p.name} (v${p.version}, accepts ${p.accepts.join(', ')})\n    ${p.description}\n    stages: ${p.stages.map((s) => `${s.id} [${s.uses}]`).join(' → ')}\n`);
  }
  process.stdout.write('\nStages:\n');
  for (const s of stages.values()) process.stdout.write(`  ${s.name.padEnd(16)} ${s.description}\n`);
  return 0;
}
