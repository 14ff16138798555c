import { readFile } from 'node:fs/promises';
import type { Config } from '../core/config.ts';
import { AppError } from '../core/errors.ts';
import { toFhirBundle } from '../fhir/bundle.ts';
import { openPlatform } from '../platform.ts';

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

export async function analyzeFile(config: Config, request: AnalyzeRequest): Promise<number> {
  const { file, pipeline, format } = request;
  const bytes = await readInputFile(file, 'image');
  const note = request.note ? await readInputFile(request.note, 'note') : undefined;
  const platform = await openPlatform(config, { withQueue: false });
  try {
    const progress = (msg: string) => { if (process.stderr.isTTY) process.stderr.write(`${msg}\n`); };
    progress(`analysing ${file} with pipeline ${pipeline}…`);
    const { caseId } = await platform.intake.accept({ bytes, pipeline, note }, { enqueue: false });
    const outcome = await platform.runner.run(caseId, { inputBytes: bytes, ...(note ? { noteBytes: note } : {}) });
    if (outcome.kind !== 'finished') throw new AppError('INTERNAL', 'the case was not run');
    const result = outcome.result;
    process.stdout.write(`${JSON.stringify(format === 'fhir' ? toFhirBundle(result, {}) : result, null, 2)}\n`);
    if (result.status === 'failed' && result.error) {
      process.stderr.write(`dxflow: ${result.error.code} in stage ${result.error.stage ?? '-'}: ${result.error.message}\nhint: ${result.error.hint}\n`);
      return 1;
    }
    return 0;
  } finally {
    await platform.close();
  }
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
