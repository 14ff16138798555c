import type { z } from 'zod';
import type { ReportParts } from '../core/report.ts';
import type { Finding, InputRecord, ModelRef, NoteRecord } from '../core/result.ts';
import type { ByteSource } from '../imaging/wsi/byte-source.ts';

// A stage is `(input, ctx) => output` with zod-typed params and output (DESIGN.md §2). It knows nothing of
// HTTP, queues or SQL: the runner owns retries, checkpoints, timing and the error path.

export interface StageContext<P> {
  caseId: string;
  /** The pipeline's name. */
  pipeline: string;
  stageId: string;
  /** The stage's position in the pipeline (0-based). */
  seq: number;
  input: InputRecord;
  /** The stage's `with:` block, already validated against its params schema. */
  params: P;
  /** The case's metadata as the caller sent it (may hold PHI: use it to decide, never copy it into results). */
  metadata: Readonly<Record<string, unknown>>;
  /** Outputs of the stages that ran before this one, by stage id. */
  outputs: ReadonlyMap<string, unknown>;
  /** Raw bytes of the case input (read once per run, shared by stages). */
  readInput(): Promise<Buffer>;
  /** The case input read by byte ranges, never whole: for whole-slide images of many gigabytes. */
  inputSource(): ByteSource;
  /** The clinical note, if the case has one (read once per run). */
  note: NoteRecord | undefined;
  readNote(): Promise<Buffer | undefined>;
  /** Stores a derived object (a heatmap, a crop) under the case's own prefix; returns its key. */
  putObject(name: string, data: Buffer): Promise<string>;
  signal: AbortSignal;
}

export interface StageResult<O> {
  data: O;
  findings?: Finding[];
  models?: ModelRef[];
  /** Parts of the explained result this stage contributes (clinical features, recommendation, …). */
  report?: ReportParts;
  /** Later stages (by id) not to run: a routing stage's branches not taken. */
  skip?: string[];
}

/**
 * A stage that handed its work to other workers (tile batches) returns this instead of a result: the
 * runner releases the case without a checkpoint, and the job that completes the work runs the case
 * again, when the stage finds its work done and returns its result.
 */
export interface StageWait {
  wait: { reason: string };
}

export function isStageWait(r: StageResult<unknown> | StageWait): r is StageWait {
  return 'wait' in r;
}

export interface StageDefinition<P = unknown, O = unknown> {
  /** The name pipeline specs use in `uses:`. */
  name: string;
  description: string;
  params: z.ZodType<P>;
  output: z.ZodType<O>;
  run(ctx: StageContext<P>): Promise<StageResult<O> | StageWait>;
}

/** Helper that keeps P and O inferred from the schemas at the definition site. */
export function defineStage<PS extends z.ZodType, OS extends z.ZodType>(def: {
  name: string;
  description: string;
  params: PS;
  output: OS;
  run(ctx: StageContext<z.infer<PS>>): Promise<StageResult<z.infer<OS>> | StageWait>;
}): StageDefinition<z.infer<PS>, z.infer<OS>> {
  return def as StageDefinition<z.infer<PS>, z.infer<OS>>;
}

export type StageRegistry = ReadonlyMap<string, StageDefinition>;

// Params appear in and out of a stage's signature (invariant), so a list of differently typed stages
// can only be typed with `any` here; each stage is still checked at its own definition.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyStage = StageDefinition<any, any>;

export function createStageRegistry(stages: readonly AnyStage[]): StageRegistry {
  const map = new Map<string, StageDefinition>();
  for (const s of stages) {
    if (map.has(s.name)) throw new Error(`stage "${s.name}" registered twice`);
    map.set(s.name, s as StageDefinition);
  }
  return map;
}
