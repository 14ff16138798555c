import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { AppError } from '../core/errors.ts';
import { ModelManifest } from '../core/manifest.ts';
import { formatIssues } from '../core/pipeline-spec.ts';

export interface LoadedManifest<M extends ModelManifest = ModelManifest> {
  manifest: M;
  /** Folder holding the manifest; the artifact path is relative to it. */
  dir: string;
  artifactPath: string;
}

/** Reads models/<name>/manifest.yaml and validates it; the artifact is not read here. */
export async function readManifest(modelsDir: string, name: string): Promise<LoadedManifest> {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new AppError('MODEL_NOT_FOUND', `"${name}" is not a valid model name`);
  const dir = path.resolve(modelsDir, name);
  const file = path.join(dir, 'manifest.yaml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new AppError('MODEL_NOT_FOUND', `No model manifest at ${file}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${file} is not valid YAML: ${(e as Error).message}`);
  }
  const parsed = ModelManifest.safeParse(raw);
  if (!parsed.success) throw new AppError('MODEL_MANIFEST_INVALID', `${file}: ${formatIssues(parsed.error)}`);
  if (parsed.data.name !== name) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${file}: name is "${parsed.data.name}" but the folder is "${name}"; they must match`);
  }
  const artifactPath = path.resolve(dir, parsed.data.artifact);
  if (!artifactPath.startsWith(dir + path.sep)) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${file}: artifact must be a file inside ${dir}`);
  }
  return { manifest: parsed.data, dir, artifactPath };
}

/** Narrows a loaded manifest to the kind a caller needs, or refuses it with the reason. */
export function requireKind<K extends ModelManifest['kind']>(loaded: LoadedManifest, kind: K): LoadedManifest<Extract<ModelManifest, { kind: K }>> {
  if (loaded.manifest.kind !== kind) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${loaded.manifest.name} is a "${loaded.manifest.kind}" model; this step needs a "${kind}" model`);
  }
  return loaded as LoadedManifest<Extract<ModelManifest, { kind: K }>>;
}

/** Reads the artifact and refuses it unless its sha256 equals the manifest's (DESIGN.md §4). */
export async function readVerifiedArtifact(loaded: LoadedManifest): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(loaded.artifactPath);
  } catch {
    throw new AppError('MODEL_NOT_FOUND', `Model artifact ${loaded.artifactPath} is missing`);
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== loaded.manifest.sha256) {
    throw new AppError('MODEL_CHECKSUM_MISMATCH', `${loaded.artifactPath} has sha256 ${actual}, manifest says ${loaded.manifest.sha256}`, {
      details: { model: loaded.manifest.name, expected: loaded.manifest.sha256, actual },
    });
  }
  return bytes;
}
