"""Training recipe for the demo lesion classifier (synthetic crops only; not for clinical use).

It classifies the crop of one pigmented lesion, as the model.detect stage saves it, as
`regular-lesion` or `irregular-lesion`. The photographs come from the lesion detector's generator
(models/demo-lesion-detector/recipe/synthetic_skin.py); the class is the generator's irregularity
parameter (below 0.5: regular).

Run from the repository root, after the detector's recipe (the sample check reads its golden.json):

    /usr/bin/python3 models/demo-lesion-classifier/recipe/train.py

It is deterministic (fixed seeds, deterministic torch kernels, one torch thread), takes about three
minutes on two CPU cores (mostly drawing the crops), and writes, next to this folder:

    model.onnx     input `image` [N,3,64,64]; output `probabilities` [N,2] (softmax in the graph)
    metrics.json   accuracy, AUC, sensitivity, specificity on held-out synthetic crops
    manifest.yaml  the ModelManifest (src/core/manifest.ts), including the sha256 of model.onnx
    MODEL_CARD.md  only the block between the metrics markers is rewritten
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

MODEL_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = MODEL_DIR.parents[1]
sys.path.insert(0, str(REPO_ROOT / "models" / "demo-lesion-detector" / "recipe"))

from synthetic_skin import LESION_CLASSES, frame_size, render_scene, sample_scene  # noqa: E402

INPUT_SIZE = 64
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LABEL_DISPLAY = {
    "regular-lesion": "Regular pigmented lesion (synthetic demo)",
    "irregular-lesion": "Irregular pigmented lesion (synthetic demo)",
}

TRAIN_SEED = 20240811
TEST_SEED = 20240812
TORCH_SEED = 13
TRAIN_IMAGES = 6000
TEST_IMAGES = 1000
EPOCHS = 12
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
THREADS = 1
WORKERS = 2

# The model.detect stage pads the box by 0.15 of its size on each side by default; training covers
# a range around it and boxes that are a little off, as a detector's are.
PADDING_RANGE = (0.05, 0.35)
BOX_JITTER = 0.08
RENDER_LONG_SIDES = (256, 320, 400, 512)
RESAMPLING = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX)
JPEG_RATE = 0.4

# Sample photographs whose lesion crops must get their class (file, expected class).
SAMPLE_CHECKS = (
    ("photo-lesion-irregular.jpg", "irregular-lesion"),
    ("photo-lesion-regular.jpg", "regular-lesion"),
)
SAMPLE_PADDING = 0.15
SAMPLE_MIN_PROBABILITY = 0.8
MAX_ARTIFACT_BYTES = 300_000

METRICS_BEGIN = "<!-- metrics:begin (written by recipe/train.py) -->"
METRICS_END = "<!-- metrics:end -->"


def crop_box(box: list[float], padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The box grown by `padding` x its size on each side, in whole pixels, clipped to the image
    (src/pipeline/stages/model-detect.ts, paddedRegion)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    left, top = max(0, math.floor(x0 - padding * w)), max(0, math.floor(y0 - padding * h))
    right, bottom = min(width, math.ceil(x1 + padding * w)), min(height, math.ceil(y1 + padding * h))
    return left, top, max(left + 1, right), max(top + 1, bottom)


def synthetic_crop(seed: int, index: int) -> tuple[np.ndarray, int]:
    """Crop ``index`` of the data set ``seed``: one lesion in a photograph, cropped as model.detect
    would, resized to 64x64. Classes alternate, so every set is balanced."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    label = index % 2
    irregularity = float(rng.uniform(0.0, 0.5) if label == 0 else rng.uniform(0.5, 1.0))
    scene = sample_scene(rng, lesions=1, irregularity=(irregularity,), widespread=bool(rng.random() < 0.2))
    width, height = frame_size(scene.aspect, int(rng.choice(RENDER_LONG_SIDES)))
    pixels, objects = render_scene(scene, width, height, rng)
    lesion = next(o for o in objects if o["kind"] == "lesion")
    x0, y0, x1, y1 = lesion["box"]
    w, h = x1 - x0, y1 - y0
    jitter = rng.uniform(-BOX_JITTER, BOX_JITTER, size=4) * [w, h, w, h]
    box = [x0 + jitter[0], y0 + jitter[1], x1 + jitter[2], y1 + jitter[3]]
    image = Image.fromarray(pixels)
    if rng.random() < JPEG_RATE:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(60, 96)))
        image = Image.open(buffer).convert("RGB")
    crop = image.crop(crop_box(box, float(rng.uniform(*PADDING_RANGE)), width, height))
    crop = crop.resize((INPUT_SIZE, INPUT_SIZE), RESAMPLING[int(rng.integers(len(RESAMPLING)))])
    return np.asarray(crop, dtype=np.uint8), label


def synthetic_set(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        crops = pool.starmap(synthetic_crop, [(seed, i) for i in range(count)], chunksize=64)
    return np.stack([c for c, _ in crops]), np.array([label for _, label in crops], dtype=np.int64)


def preprocess(pixels: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32, exactly as manifest.yaml tells the platform."""
    x = torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class LesionClassifier(nn.Module):
    """64 -> 32 -> 16 (strided), 16 -> 8 (pooled), global average pooling, one linear layer; softmax in the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(_conv(3, 16, 2), _conv(16, 32, 2), _conv(32, 48), nn.MaxPool2d(2), _conv(48, 64))
        self.head = nn.Linear(64, len(LESION_CLASSES))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image).mean(dim=(2, 3)))


class Exported(nn.Module):
    def __init__(self, net: LesionClassifier) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(image), dim=1)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flips and quarter turns: a lesion's class does not depend on the photograph's orientation."""
    x = torch.rot90(x, int(torch.randint(0, 4, (1,), generator=generator)), dims=(2, 3))
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        x = torch.flip(x, dims=(3,))
    return x


def train(x: torch.Tensor, y: torch.Tensor) -> LesionClassifier:
    generator = torch.Generator().manual_seed(TORCH_SEED)
    net = LesionClassifier()
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    steps = (len(x) + BATCH_SIZE - 1) // BATCH_SIZE
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LEARNING_RATE, epochs=EPOCHS, steps_per_epoch=steps)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(EPOCHS):
        net.train()
        order = torch.randperm(len(x), generator=generator)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            logits = net(_augment(x[batch], generator))
            loss = loss_fn(logits, y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            loss_sum += float(loss) * len(batch)
            correct += int((logits.argmax(1) == y[batch]).sum())
        print(f"epoch {epoch + 1}/{EPOCHS}: loss {loss_sum / len(x):.4f}, train accuracy {correct / len(x):.4f}", flush=True)
    return net.eval()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    return torch.cat([model(x[start:start + 512]) for start in range(0, len(x), 512)]).numpy()


def evaluate(model: Exported) -> dict[str, float | int]:
    pixels, labels = synthetic_set(TEST_SEED, TEST_IMAGES)
    probabilities = predict(model, preprocess(pixels))
    predicted = probabilities.argmax(1)
    irregular = labels == 1
    return {
        "accuracy": round(float((predicted == labels).mean()), 4),
        "auc": round(float(roc_auc_score(labels, probabilities[:, 1])), 4),
        "sensitivity": round(float((predicted[irregular] == 1).mean()), 4),
        "specificity": round(float((predicted[~irregular] == 0).mean()), 4),
        "testImages": int(len(labels)),
        "trainImages": TRAIN_IMAGES,
    }


def check_samples(model: Exported) -> list[str]:
    """The lesion crops of the sample photographs (planted boxes from the detector's golden.json, the
    stage's default padding) must get their class with probability above SAMPLE_MIN_PROBABILITY."""
    golden = json.loads((REPO_ROOT / "models" / "demo-lesion-detector" / "golden.json").read_text())
    cases = {Path(c["input"]).name: c for c in golden["cases"]}
    report = []
    for name, expected in SAMPLE_CHECKS:
        case = cases[name]
        lesion = next(o for o in case["objects"] if o["label"] == "lesion")
        image = Image.open(REPO_ROOT / "samples" / name).convert("RGB")
        crop = image.crop(crop_box(lesion["box"], SAMPLE_PADDING, image.width, image.height))
        for kernel_name, kernel in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)):
            resized = np.asarray(crop.resize((INPUT_SIZE, INPUT_SIZE), kernel))[None]
            p = float(predict(model, preprocess(resized))[0, LESION_CLASSES.index(expected)])
            report.append(f"{name} crop ({kernel_name}): p({expected}) = {p:.4f}")
            if p <= SAMPLE_MIN_PROBABILITY:
                sys.exit(f"{name}: its lesion crop resized with {kernel_name} gives p({expected}) = {p:.4f}, not above {SAMPLE_MIN_PROBABILITY}")
    return report


def export_onnx(model: Exported, path: Path) -> None:
    torch.onnx.export(model, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE), str(path), input_names=["image"], output_names=["probabilities"],
                      dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17, do_constant_folding=True)
    if path.stat().st_size >= MAX_ARTIFACT_BYTES:
        sys.exit(f"model.onnx is {path.stat().st_size} bytes; it must stay under {MAX_ARTIFACT_BYTES}")


def write_manifest(sha256: str, metrics: dict[str, float | int]) -> None:
    labels = "\n".join(f"    - {{ code: {code}, display: {LABEL_DISPLAY[code]} }}" for code in LESION_CLASSES)
    training = (f"{TRAIN_IMAGES} synthetic 64x64 crops of one pigmented lesion each, cut from synthetic skin photographs as model.detect "
                f"crops them (models/demo-lesion-detector/recipe/synthetic_skin.py, seed {TRAIN_SEED}), balanced; no patient data.")
    manifest = f"""# Generated by recipe/train.py; edit the recipe, not this file.
name: demo-lesion-classifier
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
  labels:
{labels}
confidence: {{ minProbability: 0.6 }}
intendedUse: Demonstration of the dxflow pipeline only (classifies a lesion crop saved by model.detect). Not a medical device; not for clinical use.
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
        f"| ROC AUC (p(irregular-lesion)) | {metrics['auc']:.4f} |",
        f"| sensitivity (irregular-lesion recall) | {metrics['sensitivity']:.4f} |",
        f"| specificity (regular-lesion recall) | {metrics['specificity']:.4f} |",
        f"| test crops | {metrics['testImages']} |",
        f"| training crops | {metrics['trainImages']} |",
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

    pixels, labels = synthetic_set(TRAIN_SEED, TRAIN_IMAGES)
    print(f"generated {len(labels)} training crops in {time.monotonic() - started:.1f} s", flush=True)
    model = Exported(train(preprocess(pixels), torch.from_numpy(labels))).eval()
    metrics = evaluate(model)
    (MODEL_DIR / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    onnx_path = MODEL_DIR / "model.onnx"
    export_onnx(model, onnx_path)
    sha256 = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    report = check_samples(model)
    write_manifest(sha256, metrics)
    update_card_metrics(metrics)
    for line in report:
        print(line)
    print(json.dumps(metrics))
    print(f"model.onnx {onnx_path.stat().st_size} bytes, sha256 {sha256}")
    print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
