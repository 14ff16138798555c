import { z } from 'zod';
import { AppError } from './errors.ts';

// One typed configuration for every process. Sources, later wins: defaults < config file (YAML/JSON,
// DXFLOW_CONFIG) < environment (DXFLOW_*). The environment name of a key is DXFLOW_ + the path in
// upper snake case: limits.maxPixels ← DXFLOW_LIMITS_MAX_PIXELS.

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => ['true', '1', 'yes'].includes(v))]);

export const Config = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: port.default(8080),
  /** Folder for embedded state: PGlite data, objects, the local API key. */
  dataDir: z.string().min(1).default('.dxflow'),
  /** postgres://… to use PostgreSQL; empty means embedded PGlite in dataDir/db. */
  databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://').optional(),
  /** Folder for the object store; empty means dataDir/objects. */
  objectsDir: z.string().min(1).optional(),
  /** API key accepted in addition to the generated local key (e.g. for CI or a proxy). */
  apiKey: z.string().min(16, 'must be at least 16 characters').optional(),
  pipelinesDir: z.string().min(1).default('pipelines'),
  modelsDir: z.string().min(1).default('models'),
  defaultPipeline: z.string().min(1).default('image-classify'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  limits: z.object({
    /** Largest upload accepted, in bytes (checked while streaming and before decoding). */
    maxBytes: positiveInt.default(64 * 1024 * 1024),
    /** Largest whole-slide image accepted, in bytes: slides are streamed to storage and read in place. */
    maxSlideBytes: positiveInt.default(32 * 1024 * 1024 * 1024),
    /** Largest width × height decoded, checked from the header before any pixel is allocated. */
    maxPixels: positiveInt.default(50_000_000),
    /** Requests per minute per API key; 429 with Retry-After beyond. */
    requestsPerMinute: positiveInt.default(1200),
    /** Longest a synchronous /v1/predict may take. */
    requestTimeoutMs: positiveInt.default(30_000),
  }).strict().default({ maxBytes: 64 * 1024 * 1024, maxSlideBytes: 32 * 1024 * 1024 * 1024, maxPixels: 50_000_000, requestsPerMinute: 1200, requestTimeoutMs: 30_000 }),
  onnx: z.object({
    intraOpThreads: z.coerce.number().int().min(0).max(256).default(1),
  }).strict().default({ intraOpThreads: 1 }),
  worker: z.object({
    enabled: bool.default(true),
    concurrency: positiveInt.default(1),
    /** A case lease older than this is considered abandoned by a dead worker. */
    leaseSeconds: positiveInt.default(120),
    /** Tile batches of whole slides scored at once per process (decoding overlaps inference). */
    tileConcurrency: positiveInt.default(2),
    /** A slide whose tile batches show no progress for this long is planned again (lost batches re-sent). */
    waitSeconds: positiveInt.default(600),
  }).strict().default({ enabled: true, concurrency: 1, leaseSeconds: 120, tileConcurrency: 2, waitSeconds: 600 }),
  dicom: z.object({
    /** Port of the DIMSE C-STORE SCP started by `dxflow serve`; 0 = no SCP. */
    scpPort: z.coerce.number().int().min(0).max(65535).default(0),
    /** The SCP's AE title; associations called to any other title are refused. */
    aeTitle: z.string().regex(/^[\x20-\x5b\x5d-\x7e]{1,16}$/, '1 to 16 printable characters without a backslash').default('DXFLOW'),
    /** A study becomes a case once no instance of it arrived for this long. */
    quietSeconds: positiveInt.default(30),
    /** Pipeline of the cases DICOM studies become. */
    pipeline: z.string().min(1).default('image-classify'),
    /** Most instances in one STOW-RS request. */
    stowMaxParts: positiveInt.default(1000),
  }).strict().default({ scpPort: 0, aeTitle: 'DXFLOW', quietSeconds: 30, pipeline: 'image-classify', stowMaxParts: 1000 }),
  events: z.object({
    /** Pipeline of cases created from object events and the watched folder. */
    pipeline: z.string().min(1).default('photo-triage'),
    /** Embedded stand-in for the buckets events name: the object is read from <inboxDir>/<bucket>/<key>. Default <dataDir>/inbox. */
    inboxDir: z.string().min(1).optional(),
    /** A folder watched for new files (embedded mode); each new file becomes one case. */
    watchDir: z.string().min(1).optional(),
    /** How often the watched folder is scanned; a file is taken once its size and time were the same on two scans. */
    watchIntervalMs: positiveInt.default(2000),
  }).strict().default({ pipeline: 'photo-triage', watchIntervalMs: 2000 }),
  llm: z.object({
    /** Base URL of an OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, Ollama…); empty = offline rule-based recommendations. */
    baseUrl: z.string().url('must be a URL such as http://127.0.0.1:11434/v1').optional(),
    apiKey: z.string().min(1).optional(),
    model: z.string().min(1).default('gpt-4o-mini'),
    timeoutMs: positiveInt.default(20_000),
    /** What a failed or invalid LLM answer becomes: the marked offline fallback, or the case's error path. */
    onFailure: z.enum(['fallback', 'error']).default('fallback'),
    /** Which prompt label the pipeline uses (prompts are versioned; labels point at versions). */
    promptLabel: z.string().regex(/^[a-z0-9-]+$/).default('production'),
  }).strict().default({ model: 'gpt-4o-mini', timeoutMs: 20_000, onFailure: 'fallback', promptLabel: 'production' }),
  retry: z.object({
    attempts: positiveInt.default(3),
    backoffMs: z.coerce.number().int().min(0).default(200),
  }).strict().default({ attempts: 3, backoffMs: 200 }),
}).strict();

export type Config = z.infer<typeof Config>;

const KNOWN_NESTED = ['limits', 'onnx', 'worker', 'retry', 'llm', 'events', 'dicom'] as const;

function camelToEnv(path: string[]): string {
  return 'DXFLOW_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function envToPath(name: string): string[] | undefined {
  if (!name.startsWith('DXFLOW_')) return undefined;
  const rest = name.slice('DXFLOW_'.length).toLowerCase().split('_');
  const camel = (parts: string[]) => parts.map((p, i) => (i === 0 ? p : p.charAt(0).toUpperCase() + p.slice(1))).join('');
  const head = rest[0] ?? '';
  if ((KNOWN_NESTED as readonly string[]).includes(head) && rest.length > 1) return [head, camel(rest.slice(1))];
  return [camel(rest)];
}

/** Env variables that are not configuration keys (read elsewhere) and must not trip the strict check. */
const NOT_CONFIG = new Set(['DXFLOW_CONFIG', 'DXFLOW_TEST_DATABASE_URL', 'DXFLOW_DEID_KEY']);

export function loadConfig(env: Record<string, string | undefined>, file: Record<string, unknown> = {}): Config {
  const merged: Record<string, unknown> = structuredClone(file);
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === '' || NOT_CONFIG.has(name)) continue;
    const path = envToPath(name);
    if (!path) continue;
    if (path.length === 2) {
      const [group, key] = path as [string, string];
      const existing = merged[group];
      const target = typeof existing === 'object' && existing !== null ? (existing as Record<string, unknown>) : {};
      target[key] = value;
      merged[group] = target;
    } else {
      merged[path[0] as string] = value;
    }
  }
  const parsed = Config.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `${camelToEnv([...issue.path.map(String), k])}: unknown setting; remove it or check the spelling (see docs/configuration.md)`).join('\n');
      }
      const path = issue.path.map(String);
      return `${camelToEnv(path)} (${path.join('.')}): ${issue.message}`;
    });
    throw new AppError('CONFIG_INVALID', `Invalid configuration:\n${lines.join('\n')}`, { details: { issues: lines } });
  }
  return parsed.data;
}
