"""Training recipe for the demo tissue classifier (synthetic data only; not for clinical use).

Run from the repository root:

    /usr/bin/python3 models/demo-tissue-classifier/recipe/train.py

It is deterministic (fixed seeds, deterministic torch kernels, fixed thread count), runs in a few
minutes on two CPU cores, and writes, next to this folder:

    model.onnx     input `image` [N,3,96,96]; outputs `probabilities` [N,2] (softmax in the graph)
                   and `features` [N,64,12,12] (last feature map, for class activation maps)
    head.json      the linear head over globally average-pooled features (CAM weights)
    metrics.json   accuracy, AUC, sensitivity, specificity on a held-out synthetic test set
    golden.json    reference probabilities for three committed 96x96 patches under samples/
    manifest.yaml  the ModelManifest (src/core/manifest.ts), including the sha256 of model.onnx
    MODEL_CARD.md  only the block between the metrics markers is rewritten

and the sample images under samples/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from synthetic_tissue import CLASS_CODES, render_tissue, sample_atypia, sample_tissue

MODEL_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = MODEL_DIR.parents[1]
SAMPLES_DIR = REPO_ROOT / "samples"

INPUT_SIZE = 96
# ImageNet statistics: the platform's preprocessing contract is x/255, then (x - mean) / std.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LABEL_DISPLAY = {
    "benign-pattern": "Benign-like tissue pattern (synthetic demo)",
    "tumour-pattern": "Tumour-like tissue pattern (synthetic demo)",
}

TRAIN_SEED = 20240601
TEST_SEED = 20240602  # a different seed: no test field of view is ever seen in training
TORCH_SEED = 7
TRAIN_IMAGES = 4800
TEST_IMAGES = 1000
EPOCHS = 10
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
THREADS = 2

# Scan-resolution nuisance: some patches are rendered larger and downsampled with one of the
# common resampling kernels, as a slide tile read at another magnification would be.
RENDER_SIZES = (96, 96, 96, 128, 160, 192)
RESAMPLING = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX)
JPEG_RATE = 0.25

# Committed 96x96 inputs with reference outputs (golden.json): (file, seed, atypia).
GOLDEN_PATCHES = (
    ("patch-96-benign.png", 101, 0.2),
    ("patch-96-tumour.png", 102, 0.8),
    ("patch-96-borderline.png", 103, 0.5),
)
# 512x512 showcase samples: (file, seed, atypia, expected class).
SHOWCASE_SIZE = 512
SHOWCASE = (
    ("tissue-tumour-like.png", 201, 0.85, "tumour-pattern"),
    ("tissue-benign-like.png", 202, 0.15, "benign-pattern"),
)
SHOWCASE_MIN_PROBABILITY = 0.9
MAX_ARTIFACT_BYTES = 1_000_000
MAX_SAMPLE_BYTES = 300_000

METRICS_BEGIN = "<!-- metrics:begin (written by recipe/train.py) -->"
METRICS_END = "<!-- metrics:end -->"


# ---------------------------------------------------------------------------------------------
# Data


def synthetic_patch(seed: int, index: int) -> tuple[np.ndarray, int]:
    """Patch ``index`` of the data set ``seed``: classes alternate, so every set is balanced."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    label = index % 2
    field = sample_tissue(rng, sample_atypia(rng, label))
    render_size = int(rng.choice(RENDER_SIZES))
    pixels = render_tissue(field, render_size, rng)
    image = Image.fromarray(pixels)
    if render_size != INPUT_SIZE:
        image = image.resize((INPUT_SIZE, INPUT_SIZE), RESAMPLING[int(rng.integers(len(RESAMPLING)))])
    if rng.random() < JPEG_RATE:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(70, 96)))
        image = Image.open(buffer).convert("RGB")
    return np.asarray(image, dtype=np.uint8), label


def synthetic_set(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 96, 96, 3) uint8 pixels and (count,) labels. Each patch depends only on (seed, index),
    so the result is the same whatever the number of worker processes."""
    jobs = [(seed, i) for i in range(count)]
    with multiprocessing.get_context("fork").Pool(THREADS) as pool:
        patches = pool.starmap(synthetic_patch, jobs, chunksize=64)
    return np.stack([p for p, _ in patches]), np.array([label for _, label in patches], dtype=np.int64)


def preprocess(pixels: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32, exactly as manifest.yaml tells the platform."""
    x = torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


# ---------------------------------------------------------------------------------------------
# Model


def _conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class TissueNet(nn.Module):
    """Four conv blocks (strided 96 -> 48 -> 24, pooled to 12) then global average pooling and one linear layer.

    GAP followed by a single linear layer is what makes class activation maps exact:
    CAM_k(x, y) = sum_c w[k, c] * F[c, x, y] (Zhou et al., "Learning Deep Features for
    Discriminative Localization", CVPR 2016).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(3, 16, stride=2),
            _conv_block(16, 32, stride=2),
            _conv_block(32, 48), nn.MaxPool2d(2),
            _conv_block(48, 64),
        )
        self.head = nn.Linear(64, len(CLASS_CODES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.head(features.mean(dim=(2, 3))), features


class ExportedTissueNet(nn.Module):
    """The graph shipped as ONNX: probabilities (softmax inside) and the last feature map."""

    def __init__(self, net: TissueNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = self.net(image)
        return torch.softmax(logits, dim=1), features


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Label-preserving dihedral transforms: tissue has no preferred orientation."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        x = torch.flip(x, dims=(3,))
    return x


def train(x: torch.Tensor, y: torch.Tensor) -> TissueNet:
    generator = torch.Generator().manual_seed(TORCH_SEED)
    net = TissueNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    steps_per_epoch = (len(x) + BATCH_SIZE - 1) // BATCH_SIZE
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LEARNING_RATE, epochs=EPOCHS,
                                                   steps_per_epoch=steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(EPOCHS):
        net.train()
        order = torch.randperm(len(x), generator=generator)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            inputs, targets = _augment(x[batch], generator), y[batch]
            logits, _ = net(inputs)
            loss = loss_fn(logits, targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            loss_sum += float(loss) * len(batch)
            correct += int((logits.argmax(1) == targets).sum())
            total += len(batch)
        print(f"epoch {epoch + 1}/{EPOCHS}: loss {loss_sum / total:.4f}, train accuracy {correct / total:.4f}", flush=True)
    return net.eval()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    probabilities, features = [], []
    for start in range(0, len(x), 256):
        p, f = model(x[start:start + 256])
        probabilities.append(p)
        features.append(f)
    return torch.cat(probabilities).numpy(), torch.cat(features).numpy()


# ---------------------------------------------------------------------------------------------
# Artifacts


def evaluate(model: ExportedTissueNet) -> dict[str, float | int]:
    pixels, labels = synthetic_set(TEST_SEED, TEST_IMAGES)
    probabilities, _ = predict(model, preprocess(pixels))
    predicted = probabilities.argmax(1)
    tumour = labels == 1
    return {
        "accuracy": round(float((predicted == labels).mean()), 4),
        "auc": round(float(roc_auc_score(labels, probabilities[:, 1])), 4),
        "sensitivity": round(float((predicted[tumour] == 1).mean()), 4),
        "specificity": round(float((predicted[~tumour] == 0).mean()), 4),
        "testImages": int(len(labels)),
        "trainImages": TRAIN_IMAGES,
    }


def export_onnx(model: ExportedTissueNet, path: Path) -> None:
    torch.onnx.export(
        model,
        torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),
        str(path),
        input_names=["image"],
        output_names=["probabilities", "features"],
        dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}, "features": {0: "batch"}},
        opset_version=17,
        do_constant_folding=True,
    )
    size = path.stat().st_size
    if size >= MAX_ARTIFACT_BYTES:
        sys.exit(f"model.onnx is {size} bytes; the demo artifact must stay under {MAX_ARTIFACT_BYTES}")


def write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def save_png(pixels: np.ndarray, path: Path) -> None:
    Image.fromarray(pixels).save(path, format="PNG", optimize=True)
    if path.stat().st_size >= MAX_SAMPLE_BYTES:
        sys.exit(f"{path.name} is {path.stat().st_size} bytes; samples must stay under {MAX_SAMPLE_BYTES}")


def write_golden(model: ExportedTissueNet, sha256: str) -> None:
    cases = []
    for name, seed, atypia in GOLDEN_PATCHES:
        rng = np.random.default_rng(seed)
        path = SAMPLES_DIR / name
        save_png(render_tissue(sample_tissue(rng, atypia), INPUT_SIZE, rng), path)
        # Read back from disk so the reference is computed from exactly the committed bytes.
        pixels = np.asarray(Image.open(path).convert("RGB"))[None]
        probabilities, features = predict(model, preprocess(pixels))
        cases.append({
            "input": f"samples/{name}",
            "atypia": atypia,
            "probabilities": [float(p) for p in probabilities[0]],
            "featuresShape": list(features.shape),
            "featuresMean": float(features.mean()),
        })
    write_json(MODEL_DIR / "golden.json", {
        "model": "model.onnx",
        "sha256": sha256,
        "labels": list(CLASS_CODES),
        "preprocess": "x/255, then (x - mean) / std per channel, NCHW; inputs are already 96x96",
        "mean": list(MEAN),
        "std": list(STD),
        "tolerance": 1e-5,
        "cases": cases,
    })


def write_showcase(model: ExportedTissueNet) -> list[str]:
    """Render the 512x512 samples and prove they classify correctly after a resize to 96x96.

    The platform resizes with sharp (libvips, lanczos3 by default, fit 'fill'); the check covers
    lanczos and the usual alternatives so the result does not hinge on one kernel.
    """
    report = []
    for name, seed, atypia, expected in SHOWCASE:
        rng = np.random.default_rng(seed)
        field = sample_tissue(rng, atypia)
        # Sensor noise is left out: it is incompressible and would push the PNG over the size budget.
        pixels = render_tissue(dataclasses.replace(field, noise_sigma=0.0), SHOWCASE_SIZE, rng)
        paths = [SAMPLES_DIR / name]
        save_png(pixels, paths[0])
        if expected == "tumour-pattern":
            jpeg = SAMPLES_DIR / name.replace(".png", ".jpg")
            Image.fromarray(pixels).save(jpeg, format="JPEG", quality=90)
            paths.append(jpeg)
        for path in paths:
            source = Image.open(path).convert("RGB")
            for kernel_name, kernel in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)):
                resized = np.asarray(source.resize((INPUT_SIZE, INPUT_SIZE), kernel))[None]
                probabilities, _ = predict(model, preprocess(resized))
                p = float(probabilities[0, CLASS_CODES.index(expected)])
                report.append(f"{path.name} ({kernel_name} to 96x96): p({expected}) = {p:.4f}")
                if p <= SHOWCASE_MIN_PROBABILITY:
                    sys.exit(f"{path.name} resized with {kernel_name} gives p({expected}) = {p:.4f}, "
                             f"not above {SHOWCASE_MIN_PROBABILITY}")
    return report


def write_manifest(sha256: str, metrics: dict[str, float | int]) -> None:
    labels = "\n".join(f"    - {{ code: {code}, display: {LABEL_DISPLAY[code]} }}" for code in CLASS_CODES)
    training = (f"{TRAIN_IMAGES} synthetic H&E-like 96x96 patches (recipe/synthetic_tissue.py, seed {TRAIN_SEED}), "
                "balanced benign-pattern / tumour-pattern; no patient data.")
    manifest = f"""# Generated by recipe/train.py; edit the recipe, not this file.
name: demo-tissue-classifier
version: 1.0.0
kind: onnx
artifact: model.onnx
sha256: {sha256}
inputs:
  name: image
  preprocess:
    resize: {{ width: {INPUT_SIZE}, height: {INPUT_SIZE}, fit: fill }}
    colour: rgb
    scale: 255
    mean: [{", ".join(str(m) for m in MEAN)}]
    std: [{", ".join(str(s) for s in STD)}]
    layout: nchw
outputs:
  name: probabilities
  activation: none # softmax is already inside the graph
  featureMap: features
  labels:
{labels}
confidence: {{ minProbability: 0.6 }}
explanation:
  cam: {{ weights: head.json }} # global average pooling + linear head: CAM from the feature map
tiles:
  # Whole slides are cut into 96-pixel tiles at 1.0 µm per pixel (the field the synthetic patches
  # represent); the slide score is the mean of the 8 highest tile probabilities of tumour-pattern.
  mpp: 1.0
  size: 96
  scoreClass: tumour-pattern
  pooling: {{ kind: top-k, k: 8 }}
  minTissueFraction: 0.25
intendedUse: Demonstration of the dxflow pipeline only. Not a medical device; not for clinical use.
trainingData: {json.dumps(training)}
metrics: {{ accuracy: {metrics["accuracy"]}, auc: {metrics["auc"]}, testImages: {metrics["testImages"]} }}
card: MODEL_CARD.md
"""
    (MODEL_DIR / "manifest.yaml").write_text(manifest)


def update_card_metrics(metrics: dict[str, float | int]) -> None:
    card_path = MODEL_DIR / "MODEL_CARD.md"
    card = card_path.read_text()
    begin, end = card.find(METRICS_BEGIN), card.find(METRICS_END)
    if begin < 0 or end < begin:
        sys.exit(f"MODEL_CARD.md has no metrics block; add the lines\n{METRICS_BEGIN}\n{METRICS_END}")
    table = "\n".join([
        METRICS_BEGIN,
        "| metric | value |",
        "|---|---|",
        f"| accuracy (argmax) | {metrics['accuracy']:.4f} |",
        f"| ROC AUC (p(tumour-pattern)) | {metrics['auc']:.4f} |",
        f"| sensitivity (tumour-pattern recall) | {metrics['sensitivity']:.4f} |",
        f"| specificity (benign-pattern recall) | {metrics['specificity']:.4f} |",
        f"| test images | {metrics['testImages']} |",
        f"| training images | {metrics['trainImages']} |",
        "",
    ])
    card_path.write_text(card[:begin] + table + card[end:])


def main() -> None:
    started = time.monotonic()
    random.seed(TORCH_SEED)
    np.random.seed(TORCH_SEED)
    torch.manual_seed(TORCH_SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(THREADS)
    os.makedirs(SAMPLES_DIR, exist_ok=True)

    pixels, labels = synthetic_set(TRAIN_SEED, TRAIN_IMAGES)
    print(f"generated {len(labels)} training patches in {time.monotonic() - started:.1f} s", flush=True)
    net = train(preprocess(pixels), torch.from_numpy(labels))
    model = ExportedTissueNet(net).eval()

    metrics = evaluate(model)
    write_json(MODEL_DIR / "metrics.json", metrics)

    onnx_path = MODEL_DIR / "model.onnx"
    export_onnx(model, onnx_path)
    sha256 = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    write_json(MODEL_DIR / "head.json", {
        "weight": net.head.weight.detach().tolist(),
        "bias": net.head.bias.detach().tolist(),
        "featureOutput": "features",
        "labels": list(CLASS_CODES),
    })
    write_golden(model, sha256)
    showcase = write_showcase(model)
    write_manifest(sha256, metrics)
    update_card_metrics(metrics)

    for line in showcase:
        print(line)
    print(f"accuracy {metrics['accuracy']:.4f}  auc {metrics['auc']:.4f}  sensitivity {metrics['sensitivity']:.4f}  "
          f"specificity {metrics['specificity']:.4f}  test images {metrics['testImages']}")
    print(f"model.onnx {onnx_path.stat().st_size} bytes, sha256 {sha256}")
    print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
