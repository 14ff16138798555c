#!/usr/bin/python3
"""Peer for bench/wsi-tiles.ts: OpenSlide extracting the same tiles and packing the same tensors.

    taskset -c 0 /usr/bin/python3 bench/wsi_tiles_peer.py REGIONS.json

REGIONS.json: {"slide": path, "level": int, "size": int, "regions": [[x0, y0], ...] (level-0 pixels),
"mean": [r, g, b], "std": [r, g, b], "batch": int, "saturationThreshold": number, "checkTiles": int,
"warmupTiles": int}.

For each region: read_region at the level (RGBA) → RGB → mean HSV saturation against the threshold →
(v / 255 − mean) / std as float32, channel-first, into one slot of a batch tensor. Timing is in-process
with time.perf_counter over a fresh OpenSlide handle (empty tile cache), after a warm-up pass on another
handle. Prints one JSON object on stdout; the first checkTiles tiles' RGB bytes are returned in base64
so that the caller can compare pixels.
"""
import base64
import json
import sys
import time

import numpy as np
import openslide


def extract(slide, spec, batch):
    level, size = spec["level"], spec["size"]
    scale = (1.0 / (255.0 * np.asarray(spec["std"], dtype=np.float32))).astype(np.float32).reshape(3, 1, 1)
    offset = (-np.asarray(spec["mean"], dtype=np.float32) / np.asarray(spec["std"], dtype=np.float32)).astype(np.float32).reshape(3, 1, 1)
    threshold = spec["saturationThreshold"]
    kept = 0
    slots = batch.shape[0]
    for i, (x, y) in enumerate(spec["regions"]):
        rgb = np.asarray(slide.read_region((x, y), level, (size, size)))[:, :, :3]
        high = rgb.max(axis=2)
        low = rgb.min(axis=2)
        saturation = np.where(high > 0, 255.0 * (high - low) / np.maximum(high, 1), 0.0).mean()
        if saturation > threshold:
            kept += 1
        np.multiply(rgb.transpose(2, 0, 1), scale, out=batch[i % slots], casting="unsafe")
        batch[i % slots] += offset
    return kept


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    size = spec["size"]
    batch = np.empty((spec["batch"], 3, size, size), dtype=np.float32)

    warm = openslide.OpenSlide(spec["slide"])
    extract(warm, dict(spec, regions=spec["regions"][: spec["warmupTiles"]]), batch)
    warm.close()

    slide = openslide.OpenSlide(spec["slide"])
    start = time.perf_counter()
    kept = extract(slide, spec, batch)
    seconds = time.perf_counter() - start

    check = [
        base64.b64encode(np.ascontiguousarray(np.asarray(slide.read_region((x, y), spec["level"], (size, size)))[:, :, :3]).tobytes()).decode("ascii")
        for x, y in spec["regions"][: spec["checkTiles"]]
    ]
    slide.close()
    json.dump(
        {
            "openslide": openslide.__library_version__,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "tiles": len(spec["regions"]),
            "seconds": seconds,
            "kept": kept,
            "check": check,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
