import { z } from 'zod';
import { AppError } from '../../core/errors.ts';
import { defineStage } from '../stage.ts';

// Branching inside a linear pipeline: `route` picks the first branch whose predicate holds and tells
// the runner which of the stages named by the branches not to run (`skip`). Predicates read the case
// metadata, the case input record and earlier stages' outputs; only the branch name and the skipped
// stage ids leave this stage, never the values it read (metadata can hold identifiers).

const Scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
type Scalar = z.infer<typeof Scalar>;

/**
 * `metadata.<key>...`, `input.<field>` or `outputs.<stage id>.<field>...`; a segment may index an
 * array (`detections.0`) or read its `length`.
 */
const FieldPath = z.string().regex(
  /^(metadata|input|outputs)(\.[A-Za-z0-9_-]+)+$/,
  'metadata.<key>, input.<field> or outputs.<stage id>.<field>, segments of letters, digits, "_" and "-" joined by "."',
);

export type Predicate =
  | { field: string; equals: Scalar }
  | { field: string; in: Scalar[] }
  | { field: string; exists: boolean }
  | { field: string; gt: number }
  | { field: string; gte: number }
  | { field: string; lt: number }
  | { field: string; lte: number }
  | { all: Predicate[] }
  | { any: Predicate[] }
  | { not: Predicate };

export const Predicate: z.ZodType<Predicate> = z.lazy(() => z.union([
  z.object({ field: FieldPath, equals: Scalar }).strict(),
  z.object({ field: FieldPath, in: z.array(Scalar).min(1) }).strict(),
  z.object({ field: FieldPath, exists: z.boolean() }).strict(),
  z.object({ field: FieldPath, gt: z.number() }).strict(),
  z.object({ field: FieldPath, gte: z.number() }).strict(),
  z.object({ field: FieldPath, lt: z.number() }).strict(),
  z.object({ field: FieldPath, lte: z.number() }).strict(),
  z.object({ all: z.array(Predicate).min(1) }).strict(),
  z.object({ any: z.array(Predicate).min(1) }).strict(),
  z.object({ not: Predicate }).strict(),
]));

const StageId = z.string().regex(/^[a-z][a-z0-9-]*$/, 'a stage id of this pipeline');

export interface RouteScope {
  metadata: Readonly<Record<string, unknown>>;
  input: unknown;
  outputs: ReadonlyMap<string, unknown>;
}

/** The value at a field path, or undefined when any step of it is missing. */
export function resolveField(scope: RouteScope, field: string): unknown {
  const [root, ...rest] = field.split('.');
  let value: unknown;
  let path = rest;
  if (root === 'metadata') value = scope.metadata;
  else if (root === 'input') value = scope.input;
  else {
    const [stage, ...tail] = rest;
    if (stage === undefined || !scope.outputs.has(stage)) return undefined;
    value = scope.outputs.get(stage);
    path = tail;
  }
  for (const segment of path) {
    if (Array.isArray(value)) {
      if (segment === 'length') value = value.length;
      else if (/^\d+$/.test(segment)) value = value[Number(segment)];
      else return undefined;
    } else if (value !== null && typeof value === 'object' && Object.hasOwn(value, segment)) {
      // Own properties only: "constructor" or "__proto__" never reach the prototype.
      value = (value as Record<string, unknown>)[segment];
    } else {
      return undefined;
    }
  }
  return value;
}

function compare(value: unknown, check: (v: number) => boolean): boolean {
  return typeof value === 'number' && Number.isFinite(value) && check(value);
}

export function evaluatePredicate(p: Predicate, scope: RouteScope): boolean {
  if ('all' in p) return p.all.every((q) => evaluatePredicate(q, scope));
  if ('any' in p) return p.any.some((q) => evaluatePredicate(q, scope));
  if ('not' in p) return !evaluatePredicate(p.not, scope);
  const value = resolveField(scope, p.field);
  if ('equals' in p) return value === p.equals;
  if ('in' in p) return p.in.some((x) => x === value);
  if ('exists' in p) return (value !== undefined && value !== null) === p.exists;
  if ('gt' in p) return compare(value, (v) => v > p.gt);
  if ('gte' in p) return compare(value, (v) => v >= p.gte);
  if ('lt' in p) return compare(value, (v) => v < p.lt);
  return compare(value, (v) => v <= p.lte);
}

export const routeStage = defineStage({
  name: 'route',
  description: 'Chooses the first branch whose predicate holds (on case metadata, the input or earlier outputs) and lists the stages of the other branches for the runner to skip.',
  params: z.object({
    branches: z.array(z.object({
      /** Reported as the output's `branch`; `branch-<n>` (1-based) when unset. */
      name: z.string().regex(/^[a-z][a-z0-9-]*$/).optional(),
      when: Predicate,
      /** Stages to run when this branch is chosen. */
      then: z.array(StageId),
    }).strict()).min(1),
    /** Stages to run when no branch matches. */
    otherwise: z.array(StageId).default([]),
  }).strict().superRefine((p, issues) => {
    const names = p.branches.map((b, i) => b.name ?? `branch-${i + 1}`);
    names.forEach((name, i) => {
      if (name === 'otherwise' || names.indexOf(name) !== i) issues.addIssue({ code: 'custom', path: ['branches', i, 'name'], message: `branch name "${name}" is used twice or is reserved` });
    });
  }),
  output: z.object({
    /** The chosen branch's name, or "otherwise". */
    branch: z.string(),
    /** Stage ids the runner must not run: those of the other branches that the chosen one does not name. */
    skip: z.array(z.string()),
  }),
  async run(ctx) {
    const { branches, otherwise } = ctx.params;
    const named = [...branches.flatMap((b) => b.then), ...otherwise];
    if (named.includes(ctx.stageId)) {
      throw new AppError('PIPELINE_SPEC_INVALID', `route stage "${ctx.stageId}" lists itself among the stages to run or skip; name only later stages`);
    }
    const scope: RouteScope = { metadata: ctx.metadata, input: ctx.input, outputs: ctx.outputs };
    const index = branches.findIndex((b) => evaluatePredicate(b.when, scope));
    const chosen = branches[index];
    const run = new Set(chosen ? chosen.then : otherwise);
    const skip = [...new Set(named)].filter((id) => !run.has(id));
    return { data: { branch: chosen ? chosen.name ?? `branch-${index + 1}` : 'otherwise', skip }, skip };
  },
});
