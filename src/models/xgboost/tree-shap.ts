import type { RegressionTree, TreeEnsemble } from './model-json.ts';

// Exact SHAP values of a tree ensemble in polynomial time: Lundberg, Erion & Lee, "Consistent
// Individualized Feature Attribution for Tree Ensembles" (2018), Algorithm 2 ("TreeSHAP"), the method
// behind XGBoost's predict(..., pred_contribs=True).
//
// The value of a feature subset S is the tree's expected output when the features in S are fixed to the
// row's values and the others follow the training distribution as recorded by node covers. Walking the
// tree once, the algorithm keeps, for the decision path to the current node, the list of distinct
// features met so far; for each one its "zero fraction" z (share of training rows that would follow the
// path if the feature were unknown: the product of cover ratios at its splits) and "one fraction" o (1 if
// the row itself follows the path at all its splits, else 0); and a weight vector w where w[i] sums the
// Shapley permutation weights |S|!(M−|S|−1)!/M! of the subsets of size i that reach the node, each
// multiplied by its chance of doing so. EXTEND adds a feature to the path, UNWIND removes one (the
// inverse of EXTEND); at a leaf, the weight with feature i removed, times (o_i − z_i), times the leaf value
// is feature i's share of that leaf. A feature met twice on a path is unwound and re-extended with the
// product of its fractions, which is what keeps the result exact.
//
// The bias (last value of each group) is base margin plus each tree's expected value (its root's cover-
// weighted mean leaf value), so a group's values sum to its margin. Computed in float64; XGBoost computes
// in float32, so the two agree to about 1e-6 rather than bit for bit.

interface ShapTree {
  readonly tree: RegressionTree;
  /** Cover-weighted mean leaf value under each node: the expected output from that node down. */
  readonly expected: Float64Array;
}

function expectedValues(tree: RegressionTree): Float64Array {
  const expected = new Float64Array(tree.left.length);
  const fill = (node: number): number => {
    const l = tree.left[node] as number;
    if (l === -1) return (expected[node] = tree.threshold[node] as number);
    const r = tree.right[node] as number;
    // Divided by the node's own cover, not the sum of its children's, as XGBoost does.
    return (expected[node] = (fill(l) * (tree.cover[l] as number) + fill(r) * (tree.cover[r] as number)) / (tree.cover[node] as number));
  };
  fill(0);
  return expected;
}

/**
 * Returns a function that computes SHAP values for one row (float32 values, NaN for missing) into
 * `out`, laid out as numGroup blocks of numFeature + 1 values, the bias last in each block.
 */
export function createTreeShap(ensemble: TreeEnsemble): (features: Float64Array, out: Float64Array) => void {
  const shapTrees: ShapTree[] = ensemble.trees.map((tree) => ({ tree, expected: expectedValues(tree) }));
  const maxDepth = ensemble.trees.reduce((d, t) => Math.max(d, t.depth), 0);
  // Each recursion level copies the path (at most depth + 2 entries, root placeholder included) into the
  // next segment of these arrays, so the parent's path survives for its second child.
  const capacity = ((maxDepth + 2) * (maxDepth + 3)) / 2;
  const pathFeature = new Int32Array(capacity);
  const pathZero = new Float64Array(capacity);
  const pathOne = new Float64Array(capacity);
  const pathWeight = new Float64Array(capacity);
  const width = ensemble.numFeature + 1;

  /** Appends a feature with fractions (zero, one) to the path of `length` entries at `start`. */
  function extend(start: number, length: number, zero: number, one: number, feature: number): void {
    pathFeature[start + length] = feature;
    pathZero[start + length] = zero;
    pathOne[start + length] = one;
    pathWeight[start + length] = length === 0 ? 1 : 0;
    // Subsets of size i either leave the new feature out (weight × zero, and i of the now length + 1
    // features precede it in a permutation in (length − i) / (length + 1) of cases) or take it in
    // (weight × one, moving to size i + 1, share (i + 1) / (length + 1)).
    for (let i = length - 1; i >= 0; i--) {
      const w = pathWeight[start + i] as number;
      pathWeight[start + i + 1] = (pathWeight[start + i + 1] as number) + (one * w * (i + 1)) / (length + 1);
      pathWeight[start + i] = (zero * w * (length - i)) / (length + 1);
    }
  }

  /** Removes entry k from the path of `length` entries at `start`: EXTEND run backwards. */
  function unwind(start: number, length: number, k: number): void {
    const one = pathOne[start + k] as number;
    const zero = pathZero[start + k] as number;
    const last = length - 1;
    let carry = pathWeight[start + last] as number;
    for (let i = last - 1; i >= 0; i--) {
      if (one !== 0) {
        const before = pathWeight[start + i] as number;
        const w = (carry * length) / ((i + 1) * one);
        pathWeight[start + i] = w;
        carry = before - (w * zero * (last - i)) / length;
      } else {
        pathWeight[start + i] = ((pathWeight[start + i] as number) * length) / (zero * (last - i));
      }
    }
    for (let i = k; i < last; i++) {
      pathFeature[start + i] = pathFeature[start + i + 1] as number;
      pathZero[start + i] = pathZero[start + i + 1] as number;
      pathOne[start + i] = pathOne[start + i + 1] as number;
    }
  }

  /** Total weight of the path with entry k unwound, without changing the path. */
  function unwoundWeight(start: number, length: number, k: number): number {
    const one = pathOne[start + k] as number;
    const zero = pathZero[start + k] as number;
    // No subset reaches a node through a branch that neither the row nor any training row takes.
    if (one === 0 && zero === 0) return 0;
    const last = length - 1;
    let carry = pathWeight[start + last] as number;
    let total = 0;
    // The branch is chosen once per call rather than per step, with the loop-invariant factors hoisted:
    // this function is the innermost loop of the algorithm.
    if (one !== 0) {
      const zeroPerLength = zero / length;
      for (let i = last - 1; i >= 0; i--) {
        const w = (carry * length) / ((i + 1) * one);
        total += w;
        carry = (pathWeight[start + i] as number) - w * zeroPerLength * (last - i);
      }
    } else {
      const scale = length / zero;
      for (let i = last - 1; i >= 0; i--) total += ((pathWeight[start + i] as number) * scale) / (last - i);
    }
    return total;
  }

  function recurse(
    shapTree: ShapTree, x: Float64Array, out: Float64Array, base: number,
    node: number, parentStart: number, parentLength: number, zero: number, one: number, feature: number,
  ): void {
    const { tree } = shapTree;
    const start = parentStart + parentLength;
    // A plain loop: paths are a few entries long, too short for copyWithin's call overhead to pay off.
    for (let i = 0; i < parentLength; i++) {
      pathFeature[start + i] = pathFeature[parentStart + i] as number;
      pathZero[start + i] = pathZero[parentStart + i] as number;
      pathOne[start + i] = pathOne[parentStart + i] as number;
      pathWeight[start + i] = pathWeight[parentStart + i] as number;
    }
    extend(start, parentLength, zero, one, feature);
    let length = parentLength + 1;

    const left = tree.left[node] as number;
    if (left === -1) {
      const value = tree.threshold[node] as number;
      // Entry 0 is the root placeholder (feature -1); it carries weight but no attribution.
      for (let i = 1; i < length; i++) {
        const w = unwoundWeight(start, length, i);
        const f = pathFeature[start + i] as number;
        out[base + f] = (out[base + f] as number) + w * ((pathOne[start + i] as number) - (pathZero[start + i] as number)) * value;
      }
      return;
    }

    const right = tree.right[node] as number;
    const split = tree.feature[node] as number;
    const v = x[split] as number;
    const threshold = tree.threshold[node] as number;
    // The branch the row takes, by the same rule as prediction: v < threshold left, NaN by default.
    const goesLeft = v < threshold || (!(v >= threshold) && tree.defaultLeft[node] === 1);
    const hot = goesLeft ? left : right;
    const cold = goesLeft ? right : left;
    const cover = tree.cover[node] as number;

    let incomingZero = 1;
    let incomingOne = 1;
    for (let k = 1; k < length; k++) {
      if (pathFeature[start + k] === split) {
        incomingZero = pathZero[start + k] as number;
        incomingOne = pathOne[start + k] as number;
        unwind(start, length, k);
        length--;
        break;
      }
    }
    recurse(shapTree, x, out, base, hot, start, length, ((tree.cover[hot] as number) / cover) * incomingZero, incomingOne, split);
    recurse(shapTree, x, out, base, cold, start, length, ((tree.cover[cold] as number) / cover) * incomingZero, 0, split);
  }

  return (x, out) => {
    out.fill(0);
    for (let g = 0; g < ensemble.numGroup; g++) out[g * width + width - 1] = ensemble.baseMargin;
    for (let t = 0; t < shapTrees.length; t++) {
      const shapTree = shapTrees[t] as ShapTree;
      const base = (ensemble.treeGroup[t] as number) * width;
      out[base + width - 1] = (out[base + width - 1] as number) + (shapTree.expected[0] as number);
      recurse(shapTree, x, out, base, 0, 0, 0, 1, 1, -1);
    }
  };
}
