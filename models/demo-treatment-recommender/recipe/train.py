"""Recipe for the demo treatment recommender (XGBoost, multi:softprob).

Trains on a SYNTHETIC cohort made here (no patient data): see generate_cohort() and MODEL_CARD.md.
Deterministic: fixed seeds, single thread. Run from the repository root:

    /usr/bin/python3 models/demo-treatment-recommender/recipe/train.py

Writes model.json, manifest.yaml (with the artifact's sha256), metrics.json and the metrics table of
MODEL_CARD.md next to this folder.
"""
import hashlib
import json
import os
import re

import numpy as np
import xgboost as xgb
from sklearn.metrics import accuracy_score, f1_score, log_loss

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(HERE)
CLASSES = [
    ("active-surveillance", "Active surveillance"),
    ("local-therapy", "Local therapy (radical prostatectomy or radiotherapy)"),
    ("systemic-therapy", "Systemic therapy (e.g. androgen deprivation)"),
]
FEATURES = ["image_tumour_probability", "age", "psa", "grade_group", "t_stage", "pct_positive_cores", "prior_treatment"]
T_STAGES = np.array([1.1, 1.2, 1.3, 2.1, 2.2, 2.3, 3.1, 3.2, 4.0])
MISSING_RATE = 0.08  # per clinical feature, completely at random


def generate_cohort(n, rng):
    """A synthetic prostate-biopsy cohort. Distributions are plausible, not fitted to any real data."""
    grade_group = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.34, 0.26, 0.16, 0.12, 0.12]).astype(float)
    age = np.clip(rng.normal(66, 8, n), 40, 90).round()
    psa = np.exp(rng.normal(np.log(5.0) + 0.32 * (grade_group - 1), 0.65)).round(1)
    # Higher grade → more advanced clinical stage (index into T_STAGES).
    stage_idx = np.clip(np.round(rng.normal(1.2 + 1.1 * (grade_group - 1), 1.3)), 0, len(T_STAGES) - 1).astype(int)
    t_stage = T_STAGES[stage_idx]
    pct_cores = np.clip(rng.beta(1.5 + 0.8 * grade_group, 6.0, n) * 100, 0, 100).round()
    prior = (rng.random(n) < 0.15).astype(float)
    image = 1 / (1 + np.exp(-(-2.6 + 1.1 * grade_group + rng.normal(0, 0.9, n))))

    # A simplified, guideline-inspired risk grouping (NOT clinical guidance) decides the label:
    # low risk → active surveillance, very high risk → systemic therapy, otherwise local therapy.
    risk = (
        0.9 * (grade_group - 1)
        + 0.9 * np.log(psa / 10 + 0.1)
        + 0.8 * (t_stage - 2)
        + 0.015 * (pct_cores - 30)
        + 0.8 * (image - 0.5)
        + 0.5 * prior
        + rng.logistic(0, 0.35, n)
    )
    label = np.where(risk < 0.2, 0, np.where(risk < 4.6, 1, 2))
    x = np.stack([image, age, psa, grade_group, t_stage, pct_cores, prior], axis=1)
    # Missing values in the clinical columns (the image score is always present).
    mask = rng.random((n, len(FEATURES) - 1)) < MISSING_RATE
    x[:, 1:][mask] = np.nan
    return x, label


def main():
    rng = np.random.default_rng(20261122)
    x_train, y_train = generate_cohort(6000, rng)
    x_test, y_test = generate_cohort(2000, np.random.default_rng(7))
    params = {
        "objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.2,
        "subsample": 1.0, "min_child_weight": 2, "nthread": 1, "seed": 1, "eval_metric": "mlogloss",
    }
    dtrain = xgb.DMatrix(x_train, label=y_train, feature_names=FEATURES, missing=np.nan)
    dtest = xgb.DMatrix(x_test, label=y_test, feature_names=FEATURES, missing=np.nan)
    booster = xgb.train(params, dtrain, num_boost_round=60)
    proba = booster.predict(dtest)
    pred = proba.argmax(axis=1)
    # Expected calibration error of the top-class probability (10 equal-width bins): how far the
    # stated confidence is from the observed accuracy, on held-out patients.
    conf = proba.max(axis=1)
    bins = np.minimum((conf * 10).astype(int), 9)
    ece = sum(abs(float((pred[bins == b] == y_test[bins == b]).mean()) - float(conf[bins == b].mean())) * (bins == b).mean() for b in range(10) if (bins == b).any())
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, pred)), 4),
        "expectedCalibrationError": round(float(ece), 4),
        "macroF1": round(float(f1_score(y_test, pred, average="macro")), 4),
        "logLoss": round(float(log_loss(y_test, proba)), 4),
        "testPatients": int(len(y_test)),
        "trainPatients": int(len(y_train)),
    }
    model_path = os.path.join(OUT, "model.json")
    booster.save_model(model_path)
    sha = hashlib.sha256(open(model_path, "rb").read()).hexdigest()

    # Training ranges per feature (min–max seen): inputs outside them are out of distribution.
    # Bounded features keep their natural bounds (a probability, ordinal stages and grades, a flag).
    ranges = {"image_tumour_probability": [0.0, 1.0], "grade_group": [1.0, 5.0], "t_stage": [1.0, 4.0], "prior_treatment": [0.0, 1.0]}
    for i, name in enumerate(FEATURES):
        if name in ranges:
            continue
        col = x_train[:, i][~np.isnan(x_train[:, i])]
        ranges[name] = [float(np.round(col.min(), 3)), float(np.round(col.max(), 3))]

    feature_lines = []
    for name in FEATURES:
        source = "image:tumour-pattern" if name == "image_tumour_probability" else f"clinical:{name}"
        feature_lines.append(f"    - {{ name: {name}, source: \"{source}\", range: [{ranges[name][0]}, {ranges[name][1]}] }}")
    label_lines = [f"    - {{ code: {c}, display: \"{d}\" }}" for c, d in CLASSES]
    manifest = f"""# Generated by recipe/train.py; edit the recipe, not this file.
name: demo-treatment-recommender
version: 1.0.0
kind: xgboost
artifact: model.json
sha256: {sha}
inputs:
  features:
{chr(10).join(feature_lines)}
outputs:
  labels:
{chr(10).join(label_lines)}
confidence:
  # Abstain (escalate to a specialist) when the top class is below minProbability, when the top two
  # classes are closer than minMargin, or when a required feature is missing.
  minProbability: 0.6
  minMargin: 0.15
  requiredFeatures: [psa, grade_group]
intendedUse: Demonstration of the dxflow image + note flow only. Not a medical device; not for clinical use.
trainingData: "{metrics['trainPatients']} synthetic patients (recipe/train.py generate_cohort, seed 20261122); {int(MISSING_RATE*100)}% of clinical values missing at random; no patient data."
metrics: {{ accuracy: {metrics['accuracy']}, macroF1: {metrics['macroF1']}, logLoss: {metrics['logLoss']}, expectedCalibrationError: {metrics['expectedCalibrationError']}, testPatients: {metrics['testPatients']} }}
card: MODEL_CARD.md
"""
    open(os.path.join(OUT, "manifest.yaml"), "w").write(manifest)
    json.dump(metrics, open(os.path.join(OUT, "metrics.json"), "w"), indent=2)

    card_path = os.path.join(OUT, "MODEL_CARD.md")
    table = "\n".join([
        "| metric (2000 held-out synthetic patients) | value |", "|---|---|",
        f"| accuracy | {metrics['accuracy']} |", f"| macro F1 | {metrics['macroF1']} |", f"| log loss | {metrics['logLoss']} |",
        f"| expected calibration error (top class, 10 bins) | {metrics['expectedCalibrationError']} |",
    ])
    card = open(card_path).read()
    card = re.sub(r"<!-- metrics -->.*<!-- /metrics -->", f"<!-- metrics -->\n{table}\n<!-- /metrics -->", card, flags=re.S)
    open(card_path, "w").write(card)
    print(json.dumps(metrics), sha, "class counts (train):", np.bincount(y_train).tolist())


if __name__ == "__main__":
    main()
