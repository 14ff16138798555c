#!/usr/bin/python3
"""Reference XGBoost models and the real library's outputs on held-out rows.

The TypeScript engine (src/models/xgboost) is tested against these files; XGBoost itself is the oracle.
Run from the repository root with Debian's python3 (python3-xgboost 1.7, python3-sklearn):

    /usr/bin/python3 models/xgboost-reference/recipe.py

Deterministic: fixed seeds, one thread. Each model folder gets
  model.json     Booster.save_model output (XGBoost's JSON model format)
  expected.json  held-out rows (null = missing), then rows on split thresholds (boundaryRows), with
                 XGBoost's output_margin, predict and pred_contribs results, written as shortest
                 float32 text so they parse back exactly.
About 10% of the cells are set missing (NaN) in training and in half of the held-out rows, so that
default directions are learnt and exercised.
"""
import json
import os

import numpy as np
import sklearn
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, make_classification, make_regression

HERE = os.path.dirname(os.path.abspath(__file__))
MISSING_RATE = 0.10


def with_missing(x, rng, rows=None):
    """Sets ~10% of the cells (of the given rows, or all) to NaN."""
    x = x.copy()
    mask = rng.random(x.shape) < MISSING_RATE
    if rows is not None:
        mask[~rows] = False
    x[mask] = np.nan
    return x


def f32(v):
    """Shortest text that parses back to the same float32 (XGBoost computes in float32)."""
    return float(str(np.float32(v)))


def nested_f32(a):
    return [nested_f32(v) for v in a] if isinstance(a, (list, np.ndarray)) else f32(a)


BOUNDARY_ROWS = 6


def boundary_rows(booster, template):
    """Rows whose values sit exactly on split thresholds (the first three) or a quarter of a float32 ulp
    below them (the last three: below in float64, equal once XGBoost rounds the input to float32).
    Both must go right, as XGBoost goes left only when value < threshold in float32."""
    model = json.loads(booster.save_raw("json"))
    splits = {}
    for tree in model["learner"]["gradient_booster"]["model"]["trees"]:
        for node, left in enumerate(tree["left_children"]):
            if left != -1:
                splits.setdefault(tree["split_indices"][node], []).append(np.float32(tree["split_conditions"][node]))
    rows = []
    for k in range(BOUNDARY_ROWS):
        row = np.nan_to_num(template.copy())
        for feature, thresholds in splits.items():
            threshold = thresholds[k % len(thresholds)]
            if k < BOUNDARY_ROWS // 2:
                row[feature] = float(threshold)
            else:
                ulp = float(np.spacing(np.abs(threshold)))
                row[feature] = float(threshold) - ulp / 4
        rows.append(row)
    return np.array(rows)


def build(name, x, y, params, rounds, held_out, feature_names=None, description=""):
    # Seeded from the name (Python's own hash() is salted per process, so not that).
    rng = np.random.default_rng(sum(map(ord, name)))
    order = rng.permutation(len(x))
    test_idx, train_idx = order[:held_out], order[held_out:]
    x_train = with_missing(x[train_idx], rng)
    # Missing values in every other held-out row; the rest stay complete.
    x_test = with_missing(x[test_idx], rng, rows=np.arange(held_out) % 2 == 1)

    dtrain = xgb.DMatrix(x_train, label=y[train_idx], feature_names=feature_names)
    booster = xgb.train({**params, "seed": 0, "nthread": 1}, dtrain, num_boost_round=rounds)
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    booster.save_model(os.path.join(folder, "model.json"))

    x_test = np.vstack([x_test, boundary_rows(booster, x_test[0])])
    dtest = xgb.DMatrix(x_test, feature_names=feature_names)
    margin = booster.predict(dtest, output_margin=True)
    prediction = booster.predict(dtest)
    contributions = booster.predict(dtest, pred_contribs=True)
    rows = len(x_test)
    groups = 1 if margin.ndim == 1 else margin.shape[1]
    expected = {
        "description": description,
        "xgboost": xgb.__version__,
        "sklearn": sklearn.__version__,
        "objective": params["objective"],
        "rows": [[None if np.isnan(v) else float(v) for v in row] for row in x_test],
        "boundaryRows": BOUNDARY_ROWS,
        # Per row: one value per output group; contributions per group: features then the bias.
        "margin": nested_f32(margin.reshape(rows, groups)),
        "prediction": nested_f32(prediction.reshape(rows, -1)),
        "contributions": nested_f32(contributions.reshape(rows, groups, -1)),
    }
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: {len(train_idx)} training rows, {held_out} + {BOUNDARY_ROWS} held out, {len(booster.get_dump())} trees")


def main():
    if not xgb.__version__.startswith("1.7."):
        print(f"warning: xgboost {xgb.__version__}; the committed fixtures were made with 1.7.4")
    base = {"max_depth": 4, "eta": 0.3, "tree_method": "hist"}

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    build("breast-cancer", data.data, data.target.astype(float),
          {**base, "objective": "binary:logistic"}, rounds=100, held_out=24, feature_names=names,
          description="Wisconsin diagnostic breast cancer (sklearn.datasets.load_breast_cancer), 1 = benign")

    x, y = make_classification(n_samples=600, n_features=8, n_informative=5, random_state=11)
    build("synthetic-binary", x, y.astype(float),
          {**base, "objective": "binary:logistic", "base_score": 0.3}, rounds=25, held_out=30,
          description="make_classification, binary, base_score 0.3 (logit base margin)")

    x, y = make_classification(n_samples=900, n_features=10, n_informative=6, n_classes=3,
                               n_clusters_per_class=1, random_state=12)
    build("synthetic-multiclass", x, y.astype(float),
          {**base, "objective": "multi:softprob", "num_class": 3}, rounds=40, held_out=30,
          description="make_classification, 3 classes, multi:softprob (base_score added raw per class)")

    x, y = make_regression(n_samples=600, n_features=6, n_informative=4, noise=5.0, random_state=13)
    build("synthetic-regression", x, y, {**base, "objective": "reg:squarederror", "base_score": float(np.mean(y))},
          rounds=30, held_out=30, description="make_regression, reg:squarederror, base_score = training mean")

    x, y = make_regression(n_samples=600, n_features=5, n_informative=3, noise=1.0, random_state=14)
    y = 1 / (1 + np.exp(-y / np.std(y)))
    build("synthetic-proportion", x, y, {**base, "objective": "reg:logistic"}, rounds=20, held_out=30,
          description="make_regression squashed into (0, 1), reg:logistic")


if __name__ == "__main__":
    main()
