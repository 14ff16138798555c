import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { AppError } from '../core/errors.ts';
import { formatIssues, PipelineSpec } from '../core/pipeline-spec.ts';
import type { StageRegistry } from './stage.ts';

export interface PipelineCatalog {
  get(name: string): PipelineSpec;
  list(): PipelineSpec[];
}

/**
 * Validates a spec and every stage's `with:` block against the registry, so a bad pipeline fails when it
 * is loaded (at start), never half-way through a case.
 */
export function parsePipelineSpec(raw: unknown, source: string, registry: StageRegistry): PipelineSpec {
  const parsed = PipelineSpec.safeParse(raw);
  if (!parsed.success) throw new AppError('PIPELINE_SPEC_INVALID', `${source}: ${formatIssues(parsed.error)}`);
  const spec = parsed.data;
  for (const [i, stage] of spec.stages.entries()) {
    const def = registry.get(stage.uses);
    if (!def) {
      const known = [...registry.keys()].sort().join(', ');
      throw new AppError('STAGE_NOT_FOUND', `${source}: stages.${i} ("${stage.id}") uses "${stage.uses}", which is not a registered stage. Registered: ${known}`);
    }
    const params = def.params.safeParse(stage.with);
    if (!params.success) {
      throw new AppError('PIPELINE_SPEC_INVALID', `${source}: stages.${i} ("${stage.id}") with: ${formatIssues(params.error)}`);
    }
    stage.with = params.data as Record<string, unknown>;
  }
  return spec;
}

export async function loadPipelineFile(file: string, registry: StageRegistry): Promise<PipelineSpec> {
  const text = await readFile(file, 'utf8');
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new AppError('PIPELINE_SPEC_INVALID', `${file} is not valid YAML: ${(e as Error).message}`);
  }
  const spec = parsePipelineSpec(raw, file, registry);
  const expected = path.basename(file).replace(/\.ya?ml$/, '');
  if (spec.name !== expected) {
    throw new AppError('PIPELINE_SPEC_INVALID', `${file}: name is "${spec.name}" but the file is named "${expected}"; they must match`);
  }
  return spec;
}

/** Loads every *.yaml under dir. Any invalid spec stops the load: a platform must not start half-configured. */
export async function loadPipelineCatalog(dir: string, registry: StageRegistry): Promise<PipelineCatalog> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  } catch {
    throw new AppError('CONFIG_INVALID', `Pipelines folder ${path.resolve(dir)} does not exist; set DXFLOW_PIPELINES_DIR`);
  }
  const specs = new Map<string, PipelineSpec>();
  for (const f of entries) {
    const spec = await loadPipelineFile(path.join(dir, f), registry);
    specs.set(spec.name, spec);
  }
  return {
    get(name) {
      const spec = specs.get(name);
      if (!spec) {
        throw new AppError('PIPELINE_NOT_FOUND', `No pipeline named "${name}". Available: ${[...specs.keys()].join(', ') || '(none)'}`, {
          details: { available: [...specs.keys()] },
        });
      }
      return spec;
    },
    list: () => [...specs.values()],
  };
}
