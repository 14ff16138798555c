"""Training recipe for the demo lesion detector (synthetic photographs only; not for clinical use).

Run from the repository root:

    /usr/bin/python3 models/demo-lesion-detector/recipe/train.py

It is deterministic (fixed seeds, deterministic torch kernels, fixed thread count), runs in a few
minutes on two CPU cores (one torch thread), and writes, next to this folder:

    model.onnx     input `image` [N,3,256,256] (letterboxed photograph); output `detections`
                   [N,1024,7]: per grid cell (cx, cy, w, h) in input pixels, objectness and the scores
                   of `lesion` and `spot` (sigmoid applied in the graph), YOLO style
    metrics.json   mAP@0.5 per class, precision and recall at the manifest's thresholds, on held-out
                   synthetic photographs
    golden.json    the planted boxes of the sample photographs samples/photo-*.jpg and what the recipe's
                   own model finds there
    manifest.yaml  the ModelManifest (src/core/manifest.ts), including the sha256 of model.onnx
    MODEL_CARD.md  only the block between the metrics markers is rewritten

and the sample photographs samples/photo-*.jpg.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from synthetic_skin import OBJECT_CLASSES, frame_size, render_scene, sample_scene

MODEL_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = MODEL_DIR.parents[1]
SAMPLES_DIR = REPO_ROOT / "samples"

INPUT_SIZE = 256
STRIDE = 8
GRID = INPUT_SIZE // STRIDE
# Width and height are predicted as BOX_BASE * exp(t), t clamped to [-LOG_RANGE, LOG_RANGE].
BOX_BASE = 16.0
LOG_RANGE = 4.0
PAD_COLOUR = (114, 114, 114)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LABEL_DISPLAY = {
    "lesion": "Pigmented lesion (synthetic demo)",
    "spot": "Small pigmented spot (synthetic demo)",
}

TRAIN_SEED = 20240801
VAL_SEED = 20240802  # chooses the score threshold
TEST_SEED = 20240803  # reported metrics: never seen in training or threshold choice
TORCH_SEED = 11
TRAIN_IMAGES = 2400
VAL_IMAGES = 400
TEST_IMAGES = 600
EPOCHS = 8
BATCH_SIZE = 32
LEARNING_RATE = 4e-3
# One torch thread: as fast as two on an idle two-core machine for this small network, much faster when
# the cores are shared, and the same reduction order everywhere. Data are drawn by two processes.
THREADS = 1
WORKERS = 2

IOU_THRESHOLD = 0.45
MAX_DETECTIONS = 50
MATCH_IOU = 0.5

# Some photographs are drawn larger than the model input and downsampled with one of the usual kernels,
# as the platform's resize of a camera image would.
RENDER_LONG_SIDES = (256, 256, 256, 320, 400, 512)
RESAMPLING = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX)
JPEG_RATE = 0.4

# Sample photographs: (file, seed, width, height, widespread, irregularity per lesion).
SAMPLES = (
    ("photo-lesion-irregular.jpg", 301, 640, 480, False, (0.9,)),
    ("photo-lesion-regular.jpg", 302, 480, 640, False, (0.1,)),
    ("photo-spots-widespread.jpg", 303, 640, 480, True, ()),
)
SAMPLE_QUALITY = 88
MAX_SAMPLE_BYTES = 150_000
MAX_ARTIFACT_BYTES = 1_000_000

METRICS_BEGIN = "<!-- metrics:begin (written by recipe/train.py) -->"
METRICS_END = "<!-- metrics:end -->"


# ---------------------------------------------------------------------------------------------
# Data


def letterbox_geometry(width: int, height: int) -> tuple[float, int, int, int, int]:
    """(scale, new width, new height, left, top): the image is resized by `scale` (aspect kept) and
    pasted at (left, top) of an INPUT_SIZE square filled with PAD_COLOUR. src/models/detector.ts
    computes exactly the same numbers."""
    scale = min(INPUT_SIZE / width, INPUT_SIZE / height)
    new_width = max(1, min(INPUT_SIZE, math.floor(width * scale + 0.5)))
    new_height = max(1, min(INPUT_SIZE, math.floor(height * scale + 0.5)))
    return scale, new_width, new_height, (INPUT_SIZE - new_width) // 2, (INPUT_SIZE - new_height) // 2


def letterbox(image: Image.Image, resample: int = Image.LANCZOS) -> tuple[np.ndarray, tuple[float, float, int, int]]:
    """The model input pixels and the mapping (x scale, y scale, left, top) from image to input pixels."""
    _, new_width, new_height, left, top = letterbox_geometry(image.width, image.height)
    canvas = Image.new("RGB", (INPUT_SIZE, INPUT_SIZE), PAD_COLOUR)
    canvas.paste(image.resize((new_width, new_height), resample) if (new_width, new_height) != image.size else image, (left, top))
    return np.asarray(canvas, dtype=np.uint8), (new_width / image.width, new_height / image.height, left, top)


def synthetic_photo(seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Photograph ``index`` of the data set ``seed``, letterboxed: (256, 256, 3) pixels and (K, 5)
    boxes [class, x0, y0, x1, y1] in input pixels. Depends only on (seed, index)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    scene = sample_scene(rng)
    width, height = frame_size(scene.aspect, int(rng.choice(RENDER_LONG_SIDES)))
    pixels, objects = render_scene(scene, width, height, rng)
    image = Image.fromarray(pixels)
    if rng.random() < JPEG_RATE:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(60, 96)))
        image = Image.open(buffer).convert("RGB")
    letterboxed, (sx, sy, left, top) = letterbox(image, RESAMPLING[int(rng.integers(len(RESAMPLING)))])
    boxes = np.array([[OBJECT_CLASSES.index(o["kind"]), o["box"][0] * sx + left, o["box"][1] * sy + top,
                       o["box"][2] * sx + left, o["box"][3] * sy + top] for o in objects], dtype=np.float32).reshape(-1, 5)
    return letterboxed, boxes


def synthetic_set(seed: int, count: int) -> tuple[np.ndarray, list[np.ndarray]]:
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        photos = pool.starmap(synthetic_photo, [(seed, i) for i in range(count)], chunksize=32)
    return np.stack([p for p, _ in photos]), [b for _, b in photos]


def preprocess(pixels: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32, exactly as manifest.yaml tells the platform."""
    x = torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def assign_targets(boxes: np.ndarray) -> np.ndarray:
    """Training targets on the output grid, (6, GRID, GRID): positive flag, class, x0, y0, x1, y1.

    As in YOLOv5, an object is assigned to the cell holding its centre and to the two neighbouring
    cells nearest to the centre (one across, one down or up), which the decoding (offsets in
    [-0.5, 1.5] cells) can reach. Smaller objects are written last, so they win a shared cell.
    """
    target = np.zeros((6, GRID, GRID), dtype=np.float32)
    areas = (boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2])
    for k, x0, y0, x1, y1 in boxes[np.argsort(-areas)]:
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        gx, gy = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
        cells = [(gx, gy)]
        nx = gx - 1 if cx - gx < 0.5 else gx + 1
        ny = gy - 1 if cy - gy < 0.5 else gy + 1
        if 0 <= nx < GRID:
            cells.append((nx, gy))
        if 0 <= ny < GRID:
            cells.append((gx, ny))
        for x, y in cells:
            target[:, y, x] = (1.0, k, x0, y0, x1, y1)
    return target


# ---------------------------------------------------------------------------------------------
# Model


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1, kernel: int = 3) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class LesionNet(nn.Module):
    """A small single-scale detector: stride-8 features (32x32 grid) joined with upsampled stride-16
    context (dilated convolutions see about 180 input pixels, more than the largest lesion), and a
    1x1 head giving, per cell, 4 box values, objectness and one score per class."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv(3, 12, 2), _conv(12, 24, 2), _conv(24, 32, 2), _conv(32, 32))
        self.context = nn.Sequential(_conv(32, 48, 2), _conv(48, 48, dilation=2), _conv(48, 48, dilation=4))
        self.fuse = nn.Sequential(_conv(80, 48, kernel=1), _conv(48, 32))
        self.head = nn.Conv2d(32, 5 + classes, 1)
        with torch.no_grad():
            # Start with low objectness: almost every cell is background (the usual YOLO prior).
            self.head.bias[4] = -4.0
            self.head.bias[5:] = -2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine = self.stem(x)
        coarse = nn.functional.interpolate(self.context(fine), scale_factor=2.0, mode="nearest")
        return self.head(self.fuse(torch.cat([fine, coarse], dim=1)))


def grid_centres() -> tuple[torch.Tensor, torch.Tensor]:
    gy, gx = torch.meshgrid(torch.arange(GRID, dtype=torch.float32), torch.arange(GRID, dtype=torch.float32), indexing="ij")
    return gx, gy


def decode_boxes(raw: torch.Tensor) -> torch.Tensor:
    """Raw head output (N, 5+C, G, G) -> boxes (N, 4, G, G) as x0, y0, x1, y1 in input pixels."""
    gx, gy = grid_centres()
    cx = (gx + 2.0 * torch.sigmoid(raw[:, 0]) - 0.5) * STRIDE
    cy = (gy + 2.0 * torch.sigmoid(raw[:, 1]) - 0.5) * STRIDE
    w = BOX_BASE * torch.exp(raw[:, 2].clamp(-LOG_RANGE, LOG_RANGE))
    h = BOX_BASE * torch.exp(raw[:, 3].clamp(-LOG_RANGE, LOG_RANGE))
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


class ExportedLesionNet(nn.Module):
    """The graph shipped as ONNX: decoded YOLO rows [N, cells, 5+C] = (cx, cy, w, h, objectness, class
    scores), boxes in input pixels, scores after sigmoid."""

    def __init__(self, net: LesionNet) -> None:
        super().__init__()
        self.net = net
        gx, gy = grid_centres()
        self.register_buffer("gx", gx)
        self.register_buffer("gy", gy)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        raw = self.net(image)
        cx = (self.gx + 2.0 * torch.sigmoid(raw[:, 0]) - 0.5) * STRIDE
        cy = (self.gy + 2.0 * torch.sigmoid(raw[:, 1]) - 0.5) * STRIDE
        w = BOX_BASE * torch.exp(raw[:, 2].clamp(-LOG_RANGE, LOG_RANGE))
        h = BOX_BASE * torch.exp(raw[:, 3].clamp(-LOG_RANGE, LOG_RANGE))
        rows = torch.cat([torch.stack([cx, cy, w, h], dim=1), torch.sigmoid(raw[:, 4:])], dim=1)
        return rows.flatten(2).transpose(1, 2)


def giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and generalised IoU of matching rows of (K, 4) x0, y0, x1, y1 boxes."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    iw = (torch.min(a[:, 2], b[:, 2]) - torch.max(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.min(a[:, 3], b[:, 3]) - torch.max(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    hull = (torch.max(a[:, 2], b[:, 2]) - torch.min(a[:, 0], b[:, 0])) * (torch.max(a[:, 3], b[:, 3]) - torch.min(a[:, 1], b[:, 1])) + 1e-7
    return iou, iou - (hull - union) / hull


def detection_loss(raw: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    positive = target[:, 0] > 0.5  # (N, G, G)
    count = max(int(positive.sum()), 1)
    bce = nn.functional.binary_cross_entropy_with_logits
    boxes = decode_boxes(raw).permute(0, 2, 3, 1)[positive]
    truth = target[:, 2:6].permute(0, 2, 3, 1)[positive]
    iou, g = giou(boxes, truth)
    box_loss = (1.0 - g).mean() if len(g) else raw.sum() * 0.0
    # Objectness learns the box's IoU at positive cells (YOLOv5), so scores rank well-placed boxes first.
    objectness = torch.zeros_like(raw[:, 4])
    objectness[positive] = iou.detach().clamp(min=0.0)
    obj_loss = bce(raw[:, 4], objectness, reduction="sum") / count
    classes = raw[:, 5:].permute(0, 2, 3, 1)[positive]
    one_hot = nn.functional.one_hot(target[:, 1].long()[positive], classes.shape[1]).float() if len(classes) else classes
    cls_loss = bce(classes, one_hot) if len(classes) else raw.sum() * 0.0
    loss = 5.0 * box_loss + obj_loss + cls_loss
    return loss, {"box": float(box_loss), "obj": float(obj_loss), "cls": float(cls_loss)}


def _augment(x: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random flip / quarter turn of the photographs and of their target grids and boxes:
    skin photographs have no preferred orientation."""
    size = float(INPUT_SIZE)
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        x, t = torch.flip(x, dims=(3,)), torch.flip(t, dims=(3,)).clone()
        t[:, 2], t[:, 4] = size - t[:, 4], size - t[:, 2].clone()
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        x, t = torch.flip(x, dims=(2,)), torch.flip(t, dims=(2,)).clone()
        t[:, 3], t[:, 5] = size - t[:, 5], size - t[:, 3].clone()
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        # Transpose: (x, y) -> (y, x), the same for the grid cells.
        x, t = x.transpose(2, 3), t.transpose(2, 3).clone()
        t[:, [2, 3, 4, 5]] = t[:, [3, 2, 5, 4]].clone()
    positive = t[:, 0:1] > 0.5
    t[:, 2:6] = torch.where(positive, t[:, 2:6], torch.zeros_like(t[:, 2:6]))
    return x.contiguous(), t.contiguous()


def train(x: torch.Tensor, targets: torch.Tensor) -> LesionNet:
    generator = torch.Generator().manual_seed(TORCH_SEED)
    net = LesionNet(len(OBJECT_CLASSES))
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=5e-4)
    steps_per_epoch = (len(x) + BATCH_SIZE - 1) // BATCH_SIZE
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LEARNING_RATE, epochs=EPOCHS, steps_per_epoch=steps_per_epoch,
                                                   pct_start=0.2)
    for epoch in range(EPOCHS):
        net.train()
        started = time.monotonic()
        order = torch.randperm(len(x), generator=generator)
        sums = {"loss": 0.0, "box": 0.0, "obj": 0.0, "cls": 0.0}
        batches = 0
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            inputs, target = _augment(x[batch], targets[batch], generator)
            loss, parts = detection_loss(net(inputs), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            sums["loss"] += float(loss)
            for key, value in parts.items():
                sums[key] += value
            batches += 1
        means = ", ".join(f"{k} {v / batches:.4f}" for k, v in sums.items())
        print(f"epoch {epoch + 1}/{EPOCHS}: {means} ({time.monotonic() - started:.0f} s)", flush=True)
    return net.eval()


@torch.no_grad()
def predict(model: ExportedLesionNet, x: torch.Tensor) -> np.ndarray:
    return torch.cat([model(x[start:start + 128]) for start in range(0, len(x), 128)]).numpy()


# ---------------------------------------------------------------------------------------------
# Post-processing and evaluation (the same rules as src/models/detector.ts)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every row of (K, 4) against every row of (M, 4), boxes x0, y0, x1, y1."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def postprocess(rows: np.ndarray, score_threshold: float, max_detections: int = MAX_DETECTIONS) -> np.ndarray:
    """(A, 5+C) rows -> (K, 6) detections [class, score, x0, y0, x1, y1]: score = objectness x best
    class score, threshold, class-aware greedy NMS at IOU_THRESHOLD, at most max_detections."""
    classes = rows[:, 5:].argmax(1)
    scores = rows[:, 4] * rows[np.arange(len(rows)), 5 + classes]
    keep = scores >= score_threshold
    rows, classes, scores = rows[keep], classes[keep], scores[keep]
    boxes = np.stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2, rows[:, 0] + rows[:, 2] / 2, rows[:, 1] + rows[:, 3] / 2], 1)
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for i in order:
        if len(kept) >= max_detections:
            break
        same = [j for j in kept if classes[j] == classes[i]]
        if same and iou_matrix(boxes[i:i + 1], boxes[same]).max() > IOU_THRESHOLD:
            continue
        kept.append(int(i))
    return np.array([[classes[i], scores[i], *boxes[i]] for i in kept], dtype=np.float64).reshape(-1, 6)


def match(detections: np.ndarray, truth: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy matching of class-k detections (by score) to class-k truth at IoU >= MATCH_IOU: (scores,
    true-positive flags, number of truth boxes)."""
    d = detections[detections[:, 0] == k]
    t = truth[truth[:, 0] == k]
    d = d[np.argsort(-d[:, 1], kind="stable")]
    hit = np.zeros(len(d), dtype=bool)
    if len(d) and len(t):
        ious = iou_matrix(d[:, 2:6], t[:, 1:5])
        used = np.zeros(len(t), dtype=bool)
        for i in range(len(d)):
            candidates = np.where(~used, ious[i], -1.0)
            j = int(candidates.argmax())
            if candidates[j] >= MATCH_IOU:
                used[j] = True
                hit[i] = True
    return d[:, 1], hit, len(t)


def average_precision(scores: np.ndarray, hits: np.ndarray, positives: int) -> float:
    """Area under the precision-recall curve with precision made monotone (VOC 2010+ / COCO style, all points)."""
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = np.concatenate([[0.0], tp / positives, [1.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changes = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[changes + 1] - recall[changes]) * precision[changes + 1]))


def evaluate(rows: np.ndarray, truths: list[np.ndarray], score_threshold: float) -> dict[str, float | int]:
    """mAP@0.5 over all scores (>= 0.001), and precision / recall / mean IoU of matches at score_threshold."""
    result: dict[str, float | int] = {}
    aps = []
    all_detections = [postprocess(r, 0.001) for r in rows]
    for k, name in enumerate(OBJECT_CLASSES):
        parts = [match(d, t, k) for d, t in zip(all_detections, truths)]
        ap = average_precision(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), sum(p[2] for p in parts))
        aps.append(ap)
        result[f"ap50_{name}"] = round(ap, 4)
    result["map50"] = round(float(np.mean(aps)), 4)
    tp = fp = positives = 0
    ious = []
    for k, name in enumerate(OBJECT_CLASSES):
        ktp = kfp = kpos = 0
        for r, t in zip(rows, truths):
            d = postprocess(r, score_threshold)
            _, hit, n = match(d, t, k)
            ktp, kfp, kpos = ktp + int(hit.sum()), kfp + int((~hit).sum()), kpos + n
            kd, kt = d[d[:, 0] == k], t[t[:, 0] == k]
            if len(kd) and len(kt):
                best = iou_matrix(kt[:, 1:5], kd[:, 2:6]).max(1)
                ious.extend(best[best >= MATCH_IOU].tolist())
        result[f"precision_{name}"] = round(ktp / max(ktp + kfp, 1), 4)
        result[f"recall_{name}"] = round(ktp / max(kpos, 1), 4)
        result[f"objects_{name}"] = kpos
        tp, fp, positives = tp + ktp, fp + kfp, positives + kpos
    result["precision"] = round(tp / max(tp + fp, 1), 4)
    result["recall"] = round(tp / max(positives, 1), 4)
    result["meanIou"] = round(float(np.mean(ious)), 4) if ious else 0.0
    return result


def choose_threshold(rows: np.ndarray, truths: list[np.ndarray]) -> float:
    """The score threshold (0.05 steps) with the best F1 over both classes on the validation set."""
    best, best_f1 = 0.5, -1.0
    for threshold in np.arange(0.1, 0.8, 0.05):
        tp = fp = positives = 0
        for r, t in zip(rows, truths):
            d = postprocess(r, float(threshold))
            for k in range(len(OBJECT_CLASSES)):
                _, hit, n = match(d, t, k)
                tp, fp, positives = tp + int(hit.sum()), fp + int((~hit).sum()), positives + n
        f1 = 2 * tp / max(2 * tp + fp + (positives - tp), 1)
        if f1 > best_f1 + 1e-9:
            best, best_f1 = round(float(threshold), 2), f1
    print(f"score threshold {best:.2f} (validation F1 {best_f1:.4f})", flush=True)
    return best


# ---------------------------------------------------------------------------------------------
# Artifacts


def export_onnx(model: ExportedLesionNet, path: Path) -> None:
    torch.onnx.export(
        model,
        torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),
        str(path),
        input_names=["image"],
        output_names=["detections"],
        dynamic_axes={"image": {0: "batch"}, "detections": {0: "batch"}},
        opset_version=17,
        do_constant_folding=True,
    )
    size = path.stat().st_size
    if size >= MAX_ARTIFACT_BYTES:
        sys.exit(f"model.onnx is {size} bytes; the demo artifact must stay under {MAX_ARTIFACT_BYTES}")


def write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def write_samples(model: ExportedLesionNet, score_threshold: float, sha256: str) -> list[str]:
    """Render the sample photographs, check that the model finds every planted object in them (read
    back from the JPEG bytes) and write golden.json."""
    cases, report = [], []
    for name, seed, width, height, widespread, irregularity in SAMPLES:
        rng = np.random.default_rng(seed)
        scene = sample_scene(rng, aspect=width / height, widespread=widespread, lesions=len(irregularity),
                             irregularity=irregularity, lesion_radius=(0.09, 0.12))
        pixels, objects = render_scene(scene, width, height, rng)
        path = SAMPLES_DIR / name
        Image.fromarray(pixels).save(path, format="JPEG", quality=SAMPLE_QUALITY)
        if path.stat().st_size >= MAX_SAMPLE_BYTES:
            sys.exit(f"{path.name} is {path.stat().st_size} bytes; samples must stay under {MAX_SAMPLE_BYTES}")
        letterboxed, (sx, sy, left, top) = letterbox(Image.open(path).convert("RGB"))
        d = postprocess(predict(model, preprocess(letterboxed[None]))[0], score_threshold)
        found = [{"label": OBJECT_CLASSES[int(c)], "score": round(float(s), 4),
                  "box": [round((x0 - left) / sx, 1), round((y0 - top) / sy, 1), round((x1 - left) / sx, 1), round((y1 - top) / sy, 1)]}
                 for c, s, x0, y0, x1, y1 in d]
        truth = np.array([[OBJECT_CLASSES.index(o["kind"]), *o["box"]] for o in objects], dtype=np.float64).reshape(-1, 5)
        matched = 0
        for k in range(len(OBJECT_CLASSES)):
            boxes = np.array([[OBJECT_CLASSES.index(f["label"]), f["score"], *f["box"]] for f in found]).reshape(-1, 6)
            matched += int(match(boxes, truth, k)[1].sum())
        report.append(f"{name}: {len(objects)} planted, {len(found)} detected, {matched} matched at IoU >= {MATCH_IOU}")
        if matched < len(objects) * 0.9 or len(found) > len(objects) + 1:
            sys.exit(f"{name}: the model finds {matched} of {len(objects)} planted objects with {len(found)} detections")
        cases.append({
            "input": f"samples/{name}",
            "width": width,
            "height": height,
            "widespread": widespread,
            "objects": [{"label": o["kind"], "box": o["box"], "irregularity": round(o["irregularity"], 3)} for o in objects],
            "detections": found,
        })
    write_json(MODEL_DIR / "golden.json", {
        "model": "model.onnx",
        "sha256": sha256,
        "note": "objects: the planted boxes [x0, y0, x1, y1] in image pixels; detections: what the recipe's torch model finds after PIL letterboxing (the platform resizes with sharp, so its scores differ slightly)",
        "scoreThreshold": score_threshold,
        "cases": cases,
    })
    return report


def write_manifest(sha256: str, metrics: dict[str, float | int], score_threshold: float) -> None:
    labels = "\n".join(f"    - {{ code: {code}, display: {LABEL_DISPLAY[code]} }}" for code in OBJECT_CLASSES)
    training = (f"{TRAIN_IMAGES} synthetic skin photographs with 0-3 pigmented lesions and, in a quarter of them, widespread small "
                f"spots (recipe/synthetic_skin.py, seed {TRAIN_SEED}); no patient data.")
    manifest = f"""# Generated by recipe/train.py; edit the recipe, not this file.
name: demo-lesion-detector
version: 1.0.0
kind: onnx
artifact: model.onnx
sha256: {sha256}
inputs:
  name: image
  preprocess:
    # fit contain: letterboxed (aspect kept, centred, padded with detection.padColour)
    resize: {{ width: {INPUT_SIZE}, height: {INPUT_SIZE}, fit: contain }}
    colour: rgb
    scale: 255
    mean: [{", ".join(str(m) for m in MEAN)}]
    std: [{", ".join(str(s) for s in STD)}]
    layout: nchw
outputs:
  name: detections
  activation: none # objectness and class scores are already probabilities (sigmoid in the graph)
  labels: &labels
{labels}
detection:
  format: yolo # rows (cx, cy, w, h, objectness, class scores...), boxes in input pixels
  scoreThreshold: {score_threshold} # objectness x class score; chosen for the best F1 on validation photographs
  iouThreshold: {IOU_THRESHOLD} # non-maximum suppression, per class
  maxDetections: {MAX_DETECTIONS}
  padColour: [{", ".join(str(c) for c in PAD_COLOUR)}]
  labels: *labels
intendedUse: Demonstration of the dxflow pipeline only. Not a medical device; not for clinical use.
trainingData: {json.dumps(training)}
metrics: {{ map50: {metrics["map50"]}, precision: {metrics["precision"]}, recall: {metrics["recall"]}, testImages: {metrics["testImages"]} }}
card: MODEL_CARD.md
"""
    (MODEL_DIR / "manifest.yaml").write_text(manifest)


def update_card_metrics(metrics: dict[str, float | int]) -> None:
    card_path = MODEL_DIR / "MODEL_CARD.md"
    card = card_path.read_text()
    begin, end = card.find(METRICS_BEGIN), card.find(METRICS_END)
    if begin < 0 or end < begin:
        sys.exit(f"MODEL_CARD.md has no metrics block; add the lines\n{METRICS_BEGIN}\n{METRICS_END}")
    rows = [
        METRICS_BEGIN,
        "| metric | lesion | spot | both |",
        "|---|---|---|---|",
        f"| AP@0.5 (mAP@0.5 for both) | {metrics['ap50_lesion']:.4f} | {metrics['ap50_spot']:.4f} | {metrics['map50']:.4f} |",
        f"| precision at the manifest thresholds | {metrics['precision_lesion']:.4f} | {metrics['precision_spot']:.4f} | {metrics['precision']:.4f} |",
        f"| recall at the manifest thresholds | {metrics['recall_lesion']:.4f} | {metrics['recall_spot']:.4f} | {metrics['recall']:.4f} |",
        f"| objects in the test photographs | {metrics['objects_lesion']} | {metrics['objects_spot']} | {metrics['objects_lesion'] + metrics['objects_spot']} |",
        "",
        f"Mean IoU of matched detections: {metrics['meanIou']:.4f}. Test photographs: {metrics['testImages']}; "
        f"training photographs: {metrics['trainImages']}; score threshold {metrics['scoreThreshold']}, "
        f"NMS IoU {IOU_THRESHOLD}.",
        "",
    ]
    card_path.write_text(card[:begin] + "\n".join(rows) + card[end:])


def main() -> None:
    started = time.monotonic()
    random.seed(TORCH_SEED)
    np.random.seed(TORCH_SEED)
    torch.manual_seed(TORCH_SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(THREADS)
    os.makedirs(SAMPLES_DIR, exist_ok=True)

    pixels, boxes = synthetic_set(TRAIN_SEED, TRAIN_IMAGES)
    targets = torch.from_numpy(np.stack([assign_targets(b) for b in boxes]))
    print(f"generated {len(pixels)} training photographs ({sum(len(b) for b in boxes)} objects) in {time.monotonic() - started:.1f} s", flush=True)
    net = train(preprocess(pixels), targets)
    del pixels, targets
    model = ExportedLesionNet(net).eval()

    val_pixels, val_boxes = synthetic_set(VAL_SEED, VAL_IMAGES)
    score_threshold = choose_threshold(predict(model, preprocess(val_pixels)), val_boxes)
    test_pixels, test_boxes = synthetic_set(TEST_SEED, TEST_IMAGES)
    metrics = evaluate(predict(model, preprocess(test_pixels)), test_boxes, score_threshold)
    metrics.update({"scoreThreshold": score_threshold, "iouThreshold": IOU_THRESHOLD, "testImages": TEST_IMAGES, "trainImages": TRAIN_IMAGES})
    write_json(MODEL_DIR / "metrics.json", metrics)

    onnx_path = MODEL_DIR / "model.onnx"
    export_onnx(model, onnx_path)
    sha256 = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    report = write_samples(model, score_threshold, sha256)
    write_manifest(sha256, metrics, score_threshold)
    update_card_metrics(metrics)

    for line in report:
        print(line)
    print(json.dumps(metrics))
    print(f"model.onnx {onnx_path.stat().st_size} bytes, sha256 {sha256}")
    print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
