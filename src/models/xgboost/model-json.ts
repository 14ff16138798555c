import { z } from 'zod';
import { AppError } from '../../core/errors.ts';
import { formatIssues } from '../../core/pipeline-spec.ts';
import { objectiveSpec, type ObjectiveSpec } from './objective.ts';

// XGBoost's JSON model format, as written by `Booster.save_model("m.json")` (schema
// doc/model.schema in the XGBoost sources; checked against xgboost 1.7.4). Only what prediction and
// TreeSHAP need is read; everything else in the file is ignored. Numbers in the file are float32
// values printed in shortest form, so each is rounded back to float32 with Math.fround on load.

const MAX_NODES_PER_TREE = 1 << 24;

/** learner_model_param holds its numbers as strings ("5E-1", "0"). */
const NumericString = z.string().regex(/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/, 'expected a number written as a string');
const CountString = z.string().regex(/^\d{1,9}$/, 'expected a non-negative integer written as a string');

const IntArray = z.array(z.number().int());
const FiniteArray = z.array(z.number().finite());

const TreeJson = z.object({
  tree_param: z.object({ num_nodes: CountString, size_leaf_vector: CountString.optional() }),
  left_children: IntArray,
  right_children: IntArray,
  split_indices: z.array(z.number().int().nonnegative()),
  split_conditions: FiniteArray,
  default_left: z.array(z.union([z.literal(0), z.literal(1), z.boolean()])),
  sum_hessian: FiniteArray,
  split_type: z.array(z.number().int()).optional(),
  categories_nodes: z.array(z.number().int()).optional(),
});
type TreeJson = z.infer<typeof TreeJson>;

const GbtreeModelJson = z.object({
  gbtree_model_param: z.object({ num_trees: CountString, num_parallel_tree: CountString.optional() }),
  trees: z.array(TreeJson),
  tree_info: z.array(z.number().int().nonnegative()),
});

export const XgboostModelJson = z.object({
  version: z.array(z.number().int()).min(1).optional(),
  learner: z.object({
    feature_names: z.array(z.string()).optional(),
    feature_types: z.array(z.string()).optional(),
    learner_model_param: z.object({
      // xgboost ≥ 2.1 writes a one-element vector "[5E-1]"; 1.x writes the bare number.
      base_score: z.string().transform((s) => s.replace(/^\[(.*)\]$/, '$1')).pipe(NumericString),
      num_class: CountString,
      num_feature: CountString,
      num_target: CountString.optional(),
    }),
    objective: z.object({ name: z.string() }),
    // Checked by name first (see parseGradientBooster) so that gblinear and dart get a clear message.
    gradient_booster: z.object({ name: z.string() }).loose(),
  }),
});
export type XgboostModelJson = z.infer<typeof XgboostModelJson>;

/** One regression tree, validated: every internal node has two in-range children and the tree is acyclic. */
export interface RegressionTree {
  /** Left child per node; -1 marks a leaf. */
  readonly left: Int32Array;
  readonly right: Int32Array;
  /** Feature index tested at each internal node. */
  readonly feature: Int32Array;
  /** Split threshold at internal nodes, leaf value (learning rate included) at leaves; float32 values. */
  readonly threshold: Float64Array;
  /** 1 when a missing value goes left. */
  readonly defaultLeft: Uint8Array;
  /** Sum of hessians of the training rows reaching each node (XGBoost's "cover"). */
  readonly cover: Float64Array;
  /** Longest root-to-leaf path in edges. */
  readonly depth: number;
}

/** A validated tree ensemble: what a compiled evaluator and TreeSHAP work on. */
export interface TreeEnsemble {
  readonly objective: ObjectiveSpec;
  readonly numFeature: number;
  /** num_class as XGBoost stores it: the class count for multi-class objectives, 0 otherwise. */
  readonly numClass: number;
  /** Output groups: num_class for multi-class objectives, 1 otherwise. */
  readonly numGroup: number;
  /** base_score as stored (output space, float32). */
  readonly baseScore: number;
  /** base_score converted to the margin space (float32); the starting value of every group's margin. */
  readonly baseMargin: number;
  readonly featureNames: readonly string[] | undefined;
  readonly trees: readonly RegressionTree[];
  /** Output group of each tree (tree_info). */
  readonly treeGroup: Int32Array;
  /** XGBoost version that wrote the file, e.g. "1.7.4", when recorded. */
  readonly writerVersion: string | undefined;
}

function invalid(message: string): AppError {
  return new AppError('MODEL_MANIFEST_INVALID', `XGBoost model: ${message}`);
}

function parseGradientBooster(booster: { name: string } & Record<string, unknown>): z.infer<typeof GbtreeModelJson> {
  if (booster.name !== 'gbtree') {
    throw invalid(`booster "${booster.name}" is not supported; only "gbtree" models can be evaluated (retrain with booster="gbtree")`);
  }
  const parsed = GbtreeModelJson.safeParse(booster['model']);
  if (!parsed.success) throw invalid(`learner.gradient_booster.model: ${formatIssues(parsed.error)}`);
  return parsed.data;
}

function readTree(raw: TreeJson, index: number, numFeature: number): RegressionTree {
  const where = `tree ${index}`;
  const n = Number(raw.tree_param.num_nodes);
  if (n < 1 || n > MAX_NODES_PER_TREE) throw invalid(`${where} has ${n} nodes`);
  if (Number(raw.tree_param.size_leaf_vector ?? '0') > 1) {
    throw invalid(`${where} has vector leaves (multi_strategy="multi_output_tree"), which are not supported`);
  }
  const arrays = {
    left_children: raw.left_children, right_children: raw.right_children,
    split_indices: raw.split_indices, split_conditions: raw.split_conditions, default_left: raw.default_left,
    sum_hessian: raw.sum_hessian,
  };
  for (const [name, values] of Object.entries(arrays)) {
    if (values.length !== n) throw invalid(`${where}: ${name} has ${values.length} entries, num_nodes is ${n}`);
  }
  if ((raw.split_type ?? []).some((t) => t !== 0) || (raw.categories_nodes ?? []).length > 0) {
    throw invalid(`${where} has categorical splits, which are not supported; one-hot encode categorical features instead of enable_categorical=True`);
  }

  const left = Int32Array.from(raw.left_children);
  const right = Int32Array.from(raw.right_children);
  const feature = new Int32Array(n);
  const threshold = new Float64Array(n);
  const defaultLeft = new Uint8Array(n);
  const cover = Float64Array.from(raw.sum_hessian, Math.fround);

  // Walk from the root, so that nodes deleted by pruning (unreachable) are never checked or evaluated,
  // and so that a child reached twice (a cycle or a shared subtree) is refused: evaluators and TreeSHAP
  // rely on every path ending at a leaf.
  const seen = new Uint8Array(n);
  const stack: Array<[node: number, depth: number]> = [[0, 0]];
  let depth = 0;
  seen[0] = 1;
  while (stack.length > 0) {
    const [node, d] = stack.pop() as [number, number];
    const l = left[node] as number;
    const r = right[node] as number;
    if (l === -1 && r === -1) {
      threshold[node] = Math.fround(raw.split_conditions[node] as number);
      depth = Math.max(depth, d);
      continue;
    }
    if (l < 1 || r < 1 || l >= n || r >= n || l === r) throw invalid(`${where}: node ${node} has children ${l} and ${r}, outside 1..${n - 1}`);
    const f = raw.split_indices[node] as number;
    if (f >= numFeature) throw invalid(`${where}: node ${node} splits on feature ${f}, but the model has ${numFeature} features`);
    feature[node] = f;
    threshold[node] = Math.fround(raw.split_conditions[node] as number);
    defaultLeft[node] = raw.default_left[node] ? 1 : 0;
    for (const child of [l, r]) {
      if (seen[child]) throw invalid(`${where}: node ${child} is reached twice; the tree is not a tree`);
      seen[child] = 1;
      stack.push([child, d + 1]);
    }
  }
  return { left, right, feature, threshold, defaultLeft, cover, depth };
}

/**
 * Validates an XGBoost JSON model (parsed or as text) and returns its trees in typed arrays.
 * Throws MODEL_MANIFEST_INVALID naming what is wrong or unsupported.
 */
export function parseXgboostJson(json: unknown): TreeEnsemble {
  let raw = json;
  if (typeof json === 'string') {
    try {
      raw = JSON.parse(json) as unknown;
    } catch (e) {
      throw invalid(`the file is not JSON (${(e as Error).message}); expected the output of Booster.save_model("model.json") — binary .ubj and legacy .bin models are not read, load and save them again as .json`);
    }
  }
  if (typeof raw !== 'object' || raw === null || !('learner' in raw)) {
    throw invalid('this is not an XGBoost JSON model: it has no "learner" object; expected the output of Booster.save_model("model.json")');
  }
  const parsed = XgboostModelJson.safeParse(raw);
  if (!parsed.success) throw invalid(formatIssues(parsed.error));
  const { learner, version } = parsed.data;
  const param = learner.learner_model_param;

  const objective = objectiveSpec(learner.objective.name);
  const numFeature = Number(param.num_feature);
  const numClass = Number(param.num_class);
  if (numFeature < 1) throw invalid('num_feature is 0');
  if (Number(param.num_target ?? '1') > 1) throw invalid(`num_target is ${param.num_target}; multi-target models are not supported`);
  if (objective.multiclass && numClass < 2) throw invalid(`objective "${objective.name}" needs num_class ≥ 2, the file has ${numClass}`);
  if (!objective.multiclass && numClass > 1) throw invalid(`num_class is ${numClass} but objective "${objective.name}" is not multi-class`);
  const numGroup = objective.multiclass ? numClass : 1;

  const featureNames = learner.feature_names && learner.feature_names.length > 0 ? learner.feature_names : undefined;
  if (featureNames && featureNames.length !== numFeature) {
    throw invalid(`feature_names lists ${featureNames.length} names, num_feature is ${numFeature}`);
  }
  if (featureNames && new Set(featureNames).size !== featureNames.length) throw invalid('feature_names has duplicates');
  if ((learner.feature_types ?? []).includes('c')) {
    throw invalid('feature_types marks categorical features ("c"), which are not supported; one-hot encode them instead');
  }

  const model = parseGradientBooster(learner.gradient_booster);
  if (model.trees.length !== Number(model.gbtree_model_param.num_trees)) {
    throw invalid(`num_trees is ${model.gbtree_model_param.num_trees} but ${model.trees.length} trees are stored`);
  }
  if (model.tree_info.length !== model.trees.length) throw invalid(`tree_info has ${model.tree_info.length} entries for ${model.trees.length} trees`);
  const treeGroup = Int32Array.from(model.tree_info);
  const badGroup = treeGroup.findIndex((g) => g >= numGroup);
  if (badGroup >= 0) throw invalid(`tree ${badGroup} belongs to output group ${treeGroup[badGroup]}, the model has ${numGroup}`);

  const baseScore = Math.fround(Number(param.base_score));
  return {
    objective,
    numFeature,
    numClass,
    numGroup,
    baseScore,
    baseMargin: objective.baseMargin(baseScore),
    featureNames,
    trees: model.trees.map((t, i) => readTree(t, i, numFeature)),
    treeGroup,
    writerVersion: version ? version.join('.') : undefined,
  };
}
