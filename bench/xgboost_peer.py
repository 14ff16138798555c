#!/usr/bin/python3
"""Peer for bench/xgboost.ts: the real XGBoost timing the same work on the same model and rows.

    /usr/bin/python3 bench/xgboost_peer.py MODEL.json ROWS.json SINGLE_CALLS BATCH_REPEATS SHAP_REPEATS

ROWS.json is a list of rows (null = missing). Timing is in-process with time.perf_counter, after a
warm-up, for each thread count in (all cores, 1). Prints one JSON object on stdout.
"""
import json
import os
import sys
import time

import numpy as np
import xgboost as xgb


def per_call_us(fn, calls):
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def main():
    model_file, rows_file = sys.argv[1], sys.argv[2]
    single_calls, batch_repeats, shap_repeats = (int(v) for v in sys.argv[3:6])
    with open(rows_file) as f:
        rows = np.array([[np.nan if v is None else v for v in row] for row in json.load(f)], dtype=np.float32)
    booster = xgb.Booster(model_file=model_file)
    singles = [rows[i : i + 1] for i in range(len(rows))]
    n = len(rows)
    names = booster.feature_names

    def matrix(x):
        return xgb.DMatrix(x, feature_names=names)

    result = {"xgboost": xgb.__version__, "numpy": np.__version__, "rows": n, "cores": os.cpu_count(), "threads": {}}
    for threads in (os.cpu_count() or 1, 1):
        booster.set_param({"nthread": threads})
        # Warm-up: first calls allocate and configure the predictor.
        for i in range(200):
            booster.inplace_predict(singles[i % n])
        booster.predict(matrix(rows), pred_contribs=True)

        timings = {
            "single_inplace_us": per_call_us(lambda i: booster.inplace_predict(singles[i % n]), single_calls),
            "single_dmatrix_us": per_call_us(lambda i: booster.predict(matrix(singles[i % n])), max(1, single_calls // 4)),
            "batch_inplace_us": per_call_us(lambda i: booster.inplace_predict(rows), batch_repeats),
            "shap_batch_us": per_call_us(lambda i: booster.predict(matrix(rows), pred_contribs=True), shap_repeats),
        }
        result["threads"][str(threads)] = timings

    result["margins"] = booster.inplace_predict(rows, predict_type="margin").reshape(n, -1).astype(float).tolist()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
