"""Recipe for samples/slide-demo.tif, a small synthetic whole-slide image, and its ground truth.

Run from the repository root (needs numpy, scipy, Pillow and the `vips` command of libvips-tools):

    /usr/bin/python3 samples/recipe/make_sample_slide.py

It writes

    samples/slide-demo.tif         pyramidal tiled TIFF, JPEG tiles (Q 85, 256 x 256), 0.5 um per pixel
    samples/slide-demo.truth.json  the label of every 192-pixel cell: "g" glass, "b" benign, "t" tumour

The slide is glass with two irregular tissue islands; inside the larger one lies one contiguous
tumour-pattern region (atypia 0.75-0.95), the rest of the tissue is benign-pattern (atypia 0.05-0.25).
The tissue is drawn by the demo classifier's generator
(models/demo-tissue-classifier/recipe/synthetic_tissue.py), one field of view per 96 um cell, which is
what the slide pipeline feeds the classifier: tiles of 96 px at 1.0 um per pixel, i.e. 192 level-0
pixels here. Seeds are fixed and every field depends only on its cell, so a rerun writes the same files.
Synthetic data only: no patient, scanner or data set is involved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage, special

REPO_ROOT = Path(__file__).resolve().parents[2]
# Importing the generator must not leave a __pycache__ in the model's folder.
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO_ROOT / "models" / "demo-tissue-classifier" / "recipe"))

from synthetic_tissue import (  # noqa: E402
    EOSIN_OD, HAEMATOXYLIN_OD, Nucleus, Streak, TissueField, render_tissue, sample_tissue,
)

OUT_SLIDE = REPO_ROOT / "samples" / "slide-demo.tif"
OUT_TRUTH = REPO_ROOT / "samples" / "slide-demo.truth.json"

SEED = 20240715
MPP = 0.5  # um per level-0 pixel
CELL = 192  # level-0 pixels per model tile: 96 px at 1.0 um/px
COLS, ROWS = 24, 18
WIDTH, HEIGHT = COLS * CELL, ROWS * CELL
TISSUE_FRACTION = 0.53
BENIGN_ATYPIA = (0.05, 0.25)
TUMOUR_ATYPIA = (0.75, 0.95)
# Neighbouring fields overlap by 2 * FEATHER pixels and are cross-faded there, so the slide shows no
# seams along the cell grid. Inside a cell, all but a FEATHER-wide rim is that cell's field alone.
FEATHER = 16
TISSUE_EDGE = 24.0  # width (px) of the soft tissue/glass edge: tissue thins out towards the glass
TUMOUR_EDGE = 16.0  # width (px) of the tumour/benign transition
TUMOUR_INSET = 320.0  # the tumour keeps this far (px) inside the tissue edge
GLASS_RGB = np.array([241.0, 240.0, 237.0])  # bright, nearly grey: background to any tissue detector
GLASS_NOISE = 1.0
JPEG_QUALITY = 85
VIPS_TILE = 256
WORKERS = 2

# One slide is one staining run on one scanner: stain colour and strength, focus, brightness and
# sensor noise are constant across it, set to the centre of the ranges the classifier was trained on.
# What varies from field to field is the tissue itself (nuclei, fibres, spaces, texture).
SLIDE_OPTICS = dict(
    haematoxylin_od=HAEMATOXYLIN_OD / np.linalg.norm(HAEMATOXYLIN_OD),
    eosin_od=EOSIN_OD / np.linalg.norm(EOSIN_OD),
    haematoxylin_scale=1.0,
    eosin_scale=1.0,
    eosin_base=0.4,
    blur=0.004,
    brightness=1.0,
    noise_sigma=2.0,
)


# ---------------------------------------------------------------------------------------------
# Layout: where the glass, the benign tissue and the tumour are


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Unit-variance, low-frequency noise: a coarse random grid upsampled bicubically to `shape`."""
    coarse = rng.standard_normal(grid).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, mode="F").resize((shape[1], shape[0]), Image.BICUBIC))
    return (field - field.mean()) / max(float(field.std()), 1e-6)


@dataclasses.dataclass(frozen=True)
class Blob:
    """An irregular ellipse: centre and semi-axes in level-0 pixels, boundary radius modulated by harmonics."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float
    harmonics: tuple[tuple[int, float, float], ...]


def _random_blob(rng: np.random.Generator, cx: float, cy: float, a: float, b: float) -> Blob:
    harmonics = tuple((k, float(rng.uniform(0.02, 0.08) / math.sqrt(k - 1)), float(rng.uniform(0, 2 * math.pi)))
                      for k in range(2, 7))
    return Blob(cx, cy, a, b, float(rng.uniform(-0.15, 0.15)), harmonics)


def _blob_depth(blob: Blob, scale: float, xs: np.ndarray, ys: np.ndarray, wobble: np.ndarray) -> np.ndarray:
    """Approximate signed distance (px) inside the blob's boundary: positive inside, negative outside."""
    dx, dy = xs - blob.cx, ys - blob.cy
    c, s = math.cos(blob.angle), math.sin(blob.angle)
    u = (c * dx + s * dy) / (blob.a * scale)
    v = (-s * dx + c * dy) / (blob.b * scale)
    theta = np.arctan2(v, u)
    boundary = np.ones_like(u)
    for k, amp, phase in blob.harmonics:
        boundary += amp * np.cos(k * theta + phase)
    boundary *= 1.0 + 0.06 * wobble
    rho = np.hypot(u, v) / boundary
    # Near the boundary, (1 - rho) times the mean radius is close to the distance in pixels.
    return ((1.0 - rho) * math.sqrt(blob.a * blob.b) * scale).astype(np.float32)


def make_layout() -> dict[str, np.ndarray | float]:
    """Soft tissue coverage `alpha` and tumour share `tumour` (both 0-1) for every level-0 pixel."""
    rng = np.random.default_rng(np.random.SeedSequence([SEED, 0]))
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    wobble = _smooth_noise(rng, (HEIGHT, WIDTH), (12, 16))
    islands = (_random_blob(rng, 0.345 * WIDTH, 0.50 * HEIGHT, 0.31 * WIDTH, 0.46 * HEIGHT),
               _random_blob(rng, 0.83 * WIDTH, 0.50 * HEIGHT, 0.135 * WIDTH, 0.43 * HEIGHT))
    tumour_blob = _random_blob(rng, 0.30 * WIDTH, 0.44 * HEIGHT, 0.14 * WIDTH, 0.17 * HEIGHT)

    # Grow or shrink both islands together until they cover the wanted share of the slide.
    # Searched on every 4th pixel, which is plenty for a share of the area and 16 times faster.
    lo, hi = 0.5, 1.5
    for _ in range(24):
        scale = 0.5 * (lo + hi)
        sparse = np.maximum(*(_blob_depth(blob, scale, xs[::4, ::4], ys[::4, ::4], wobble[::4, ::4])
                              for blob in islands))
        if float((sparse > 0).mean()) < TISSUE_FRACTION:
            lo = scale
        else:
            hi = scale
    scale = 0.5 * (lo + hi)
    depth = np.maximum(*(_blob_depth(blob, scale, xs, ys, wobble) for blob in islands))
    alpha = np.clip(depth / TISSUE_EDGE + 0.5, 0.0, 1.0)
    tumour_depth = np.minimum(_blob_depth(tumour_blob, 1.0, xs, ys, wobble), depth - TUMOUR_INSET)
    tumour = np.clip(tumour_depth / TUMOUR_EDGE + 0.5, 0.0, 1.0)

    tissue_parts = ndimage.label(depth > 0)[1]
    tumour_parts = ndimage.label(tumour_depth > 0)[1]
    touches_border = bool((depth[0] > 0).any() or (depth[-1] > 0).any() or (depth[:, 0] > 0).any()
                          or (depth[:, -1] > 0).any())
    if tissue_parts != 2 or tumour_parts != 1 or touches_border:
        raise SystemExit(f"layout check failed: {tissue_parts} tissue islands (want 2), {tumour_parts} tumour "
                         f"regions (want 1), tissue touches the slide edge: {touches_border}")
    return {"alpha": alpha, "tumour": tumour, "scale": scale}


def cell_labels(alpha: np.ndarray, tumour: np.ndarray) -> tuple[list[list[str]], dict[str, np.ndarray]]:
    """The majority label of each cell, from the per-pixel labels glass / benign / tumour."""
    tissue = alpha >= 0.5
    is_tumour = tissue & (tumour >= 0.5)
    is_benign = tissue & ~is_tumour

    def per_cell(mask: np.ndarray) -> np.ndarray:
        return mask.reshape(ROWS, CELL, COLS, CELL).mean(axis=(1, 3))

    shares = {"g": per_cell(~tissue), "b": per_cell(is_benign), "t": per_cell(is_tumour)}
    stacked = np.stack([shares["g"], shares["b"], shares["t"]])
    winner = stacked.argmax(axis=0)
    labels = [["gbt"[int(winner[r, c])] for c in range(COLS)] for r in range(ROWS)]
    return labels, shares


# ---------------------------------------------------------------------------------------------
# Tissue: one field of view per cell, widened so that neighbours can be cross-faded


def _cell_atypia(kind: str) -> np.ndarray:
    """Per-cell atypia: smooth across the slide (neighbouring cells alike), inside the class's range."""
    rng = np.random.default_rng(np.random.SeedSequence([SEED, 1, "bt".index(kind)]))
    u = _smooth_noise(rng, (ROWS, COLS), (4, 5))
    u = special.ndtr(u)  # normal CDF: spread over [0, 1]
    lo, hi = BENIGN_ATYPIA if kind == "b" else TUMOUR_ATYPIA
    return lo + (hi - lo) * u


def _widen(field: TissueField, core: int, margin: int) -> TissueField:
    """The field re-expressed on a window of core + 2 * margin pixels whose central `core` pixels are the
    original field at its original scale. Nuclei are repeated periodically into the margin, so the
    margin holds tissue of the same density and kind rather than an empty border."""
    size = core + 2 * margin
    k = core / size
    off = margin / size

    def nucleus_copies(nuclei: tuple[Nucleus, ...]) -> list[Nucleus]:
        out = []
        for n in nuclei:
            for sx in (-1, 0, 1):
                for sy in (-1, 0, 1):
                    cx, cy = off + (n.cx + sx) * k, off + (n.cy + sy) * k
                    # The original always; a copy only where it falls into the margin, not over the core.
                    inside_core = off <= cx <= 1 - off and off <= cy <= 1 - off
                    if (sx, sy) != (0, 0) and (inside_core or not (-0.05 < cx < 1.05 and -0.05 < cy < 1.05)):
                        continue
                    out.append(dataclasses.replace(n, cx=cx, cy=cy, semi_major=n.semi_major * k,
                                                   semi_minor=n.semi_minor * k))
        return out

    def streak(st: Streak) -> Streak:
        return dataclasses.replace(st, cx=off + st.cx * k, cy=off + st.cy * k, semi_major=st.semi_major * k,
                                   semi_minor=st.semi_minor * k)

    return dataclasses.replace(
        field,
        nuclei=tuple(nucleus_copies(field.nuclei)),
        nucleoli=tuple(nucleus_copies(field.nucleoli)),
        fibres=tuple(streak(f) for f in field.fibres),
        spaces=tuple(streak(s) for s in field.spaces),
        blur=field.blur * k,
    )


def render_cell(job: tuple[str, int, int, float]) -> tuple[str, int, int, np.ndarray]:
    """Optical density (float32, a square of CELL + 2 * FEATHER pixels, 3 channels) of the field of `kind`
    for cell (row, col)."""
    kind, row, col, atypia = job
    rng = np.random.default_rng(np.random.SeedSequence([SEED, 2, "bt".index(kind), row, col]))
    field = dataclasses.replace(sample_tissue(rng, atypia), **SLIDE_OPTICS)
    pixels = render_tissue(_widen(field, CELL, FEATHER), CELL + 2 * FEATHER, rng)
    density = -np.log(np.maximum(pixels, 1).astype(np.float32) / 255.0)
    return kind, row, col, density


def _feather_weights() -> np.ndarray:
    """Window weights: 1 in the middle, linear ramps over the 2 * FEATHER pixels each side shares with a
    neighbour, so that overlapping windows add up to exactly 1."""
    size = CELL + 2 * FEATHER
    ramp = np.ones(size, dtype=np.float32)
    rise = (np.arange(2 * FEATHER, dtype=np.float32) + 0.5) / (2 * FEATHER)
    ramp[:2 * FEATHER] = rise
    ramp[-2 * FEATHER:] = rise[::-1]
    return np.outer(ramp, ramp)


def render_slide(alpha: np.ndarray, tumour: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    atypia = {kind: _cell_atypia(kind) for kind in "bt"}
    size = CELL + 2 * FEATHER
    jobs = []
    for row in range(ROWS):
        for col in range(COLS):
            y0, x0 = row * CELL - FEATHER, col * CELL - FEATHER
            ys = slice(max(y0, 0), min(y0 + size, HEIGHT))
            xs = slice(max(x0, 0), min(x0 + size, WIDTH))
            a, t = alpha[ys, xs], tumour[ys, xs]
            if not (a > 0).any():
                continue  # glass only: no field needed
            if ((a > 0) & (t < 1)).any():
                jobs.append(("b", row, col, float(atypia["b"][row, col])))
            if ((a > 0) & (t > 0)).any():
                jobs.append(("t", row, col, float(atypia["t"][row, col])))

    fields: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        for kind, row, col, density in pool.imap_unordered(render_cell, jobs, chunksize=8):
            fields.setdefault((row, col), {})[kind] = density

    weights = _feather_weights()
    density_sum = np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32)
    weight_sum = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    for (row, col), by_kind in sorted(fields.items()):
        y0, x0 = row * CELL - FEATHER, col * CELL - FEATHER
        wy0, wx0 = max(-y0, 0), max(-x0, 0)
        y1, x1 = min(y0 + size, HEIGHT), min(x0 + size, WIDTH)
        ys, xs = slice(y0 + wy0, y1), slice(x0 + wx0, x1)
        wys, wxs = slice(wy0, wy0 + y1 - (y0 + wy0)), slice(wx0, wx0 + x1 - (x0 + wx0))
        share = tumour[ys, xs][..., None]
        benign = by_kind.get("b")
        malignant = by_kind.get("t")
        if benign is None:
            density = malignant[wys, wxs]
        elif malignant is None:
            density = benign[wys, wxs]
        else:
            density = (1.0 - share) * benign[wys, wxs] + share * malignant[wys, wxs]
        w = weights[wys, wxs]
        density_sum[ys, xs] += w[..., None] * density
        weight_sum[ys, xs] += w

    tissue_rgb = 255.0 * np.exp(-density_sum / np.maximum(weight_sum, 1e-6)[..., None])
    glass_rng = np.random.default_rng(np.random.SeedSequence([SEED, 3]))
    glass = GLASS_RGB + glass_rng.normal(0.0, GLASS_NOISE, size=(HEIGHT, WIDTH, 1)).astype(np.float32)
    a = alpha[..., None]
    rgb = np.clip(np.rint(a * tissue_rgb + (1.0 - a) * glass), 0, 255).astype(np.uint8)
    counts = {kind: sum(1 for j in jobs if j[0] == kind) for kind in "bt"}
    return rgb, counts


# ---------------------------------------------------------------------------------------------
# Output


def write_tiff(rgb: np.ndarray, path: Path) -> str:
    pixels_per_mm = 1000.0 / MPP
    with tempfile.TemporaryDirectory(prefix="dxflow-sample-slide-") as tmp:
        raw = Path(tmp) / "slide.ppm"
        Image.fromarray(rgb).save(raw)
        command = ["vips", "tiffsave", str(raw), str(path), "--tile", "--pyramid", "--compression", "jpeg",
                   "--Q", str(JPEG_QUALITY), "--tile-width", str(VIPS_TILE), "--tile-height", str(VIPS_TILE),
                   "--xres", f"{pixels_per_mm:g}", "--yres", f"{pixels_per_mm:g}", "--resunit", "cm"]
        subprocess.run(command, check=True)
    shown = command[:2] + ["<rendered pixels>", str(path.relative_to(REPO_ROOT))] + command[4:]
    return " ".join(shown)


def write_truth(labels: list[list[str]], path: Path) -> None:
    head = json.dumps({"mpp": MPP, "tile": CELL, "cols": COLS, "rows": ROWS})[:-1]
    rows = ",\n".join("    " + json.dumps(row, separators=(",", ":")) for row in labels)
    path.write_text(f'{head}, "cells": [\n{rows}\n  ]}}\n', encoding="utf-8")


def main() -> None:
    started = time.perf_counter()
    layout = make_layout()
    alpha, tumour = layout["alpha"], layout["tumour"]
    labels, shares = cell_labels(alpha, tumour)
    tissue_share = float((alpha >= 0.5).mean())
    print(f"layout: {WIDTH}x{HEIGHT} px at {MPP} um/px, 2 tissue islands covering {tissue_share:.1%} "
          f"(island scale {layout['scale']:.3f}), 1 tumour region = {float(((alpha >= 0.5) & (tumour >= 0.5)).mean()):.1%} "
          f"of the slide")

    rgb, counts = render_slide(alpha, tumour)
    print(f"rendered {counts['b']} benign-pattern fields (atypia {BENIGN_ATYPIA[0]}-{BENIGN_ATYPIA[1]}) and "
          f"{counts['t']} tumour-pattern fields (atypia {TUMOUR_ATYPIA[0]}-{TUMOUR_ATYPIA[1]}), "
          f"{CELL}+2x{FEATHER} px each, seed {SEED}")

    command = write_tiff(rgb, OUT_SLIDE)
    write_truth(labels, OUT_TRUTH)
    flat = [label for row in labels for label in row]
    mixed = sum(1 for r in range(ROWS) for c in range(COLS) if max(s[r, c] for s in shares.values()) < 0.9)
    digest = hashlib.sha256(OUT_SLIDE.read_bytes()).hexdigest()
    print(f"cells ({COLS}x{ROWS} of {CELL} px): {flat.count('g')} glass, {flat.count('b')} benign, "
          f"{flat.count('t')} tumour; {mixed} cells hold less than 90% of their majority label")
    print("  " + "\n  ".join("".join(row) for row in labels))
    print(f"wrote {OUT_SLIDE.relative_to(REPO_ROOT)} ({OUT_SLIDE.stat().st_size} bytes, sha256 {digest[:16]}...) "
          f"with: {command}")
    print(f"wrote {OUT_TRUTH.relative_to(REPO_ROOT)}")
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
