"""Test fixtures for class activation maps (src/models/cam.ts): small ONNX heads over a feature map,
with Grad-CAM weights computed by torch autograd as the reference.

Run from the repository root (Debian's python3-torch; the pyenv ``python3`` may lack torch):

    /usr/bin/python3 models/demo-tissue-classifier/recipe/export_cam_head_fixtures.py

It writes, under test/fixtures/cam/:

    features.f32      one feature map [1, 64, 12, 12], float32 little-endian, C order; shaped like the
                      demo model's ``features`` output (non-negative, after a ReLU) with a hot spot
    head-linear.onnx  global average pooling + the demo model's own linear layer (head.json): the
                      head for which CAM is exact, so Grad-CAM must reduce to CAM
    head-mlp.onnx     GAP -> Linear(64, 16) -> ReLU -> Linear(16, 2): a head CAM cannot explain
    head-tanh.onnx    GAP -> Linear(64, 16) -> Tanh -> Linear(16, 2): a smooth non-linear head, where
                      finite differences carry a truncation error (the ReLU head is piecewise linear)
    head-mlp-batch3.onnx  the ReLU head exported with a fixed batch of 3, as some exporters leave it
    expected.json     per head and class: the logit, the Grad-CAM weights alpha_c = mean_ij dy_k/dA_c,ij
                      (Selvaraju et al., ICCV 2017, eq. 1) and the normalised Grad-CAM map

Every head takes ``features`` [N, 64, 12, 12] and returns ``logits`` [N, 2] (N dynamic, except
head-mlp-batch3.onnx, whose references are those of head-mlp.onnx). The
references are computed in float64 from the float32 weights that were exported, so they are the exact
gradients of the exported function, free of float32 rounding. The run is deterministic (fixed seeds).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

MODEL_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = MODEL_DIR.parents[1]
OUT_DIR = REPO_ROOT / "test" / "fixtures" / "cam"

CHANNELS, HEIGHT, WIDTH = 64, 12, 12
HIDDEN = 16
FEATURE_SEED = 20240611
TORCH_SEED = 11
MAX_FIXTURE_BYTES = 300_000


class PooledHead(nn.Module):
    """Global average pooling followed by ``layers``: the shape of every head here."""

    def __init__(self, layers: nn.Module) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features.mean(dim=(2, 3)))


def synthetic_features() -> np.ndarray:
    """A post-ReLU feature map: per-channel level plus a channel-specific response to one hot spot.

    Channels respond to the spot with either sign, so the map for a class depends on which channels
    the head weighs; ReLU leaves exact zeros, as in a real network.
    """
    rng = np.random.default_rng(FEATURE_SEED)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    spot = np.exp(-((yy - 3.5) ** 2 + (xx - 7.5) ** 2) / (2 * 2.0 ** 2))
    level = rng.normal(0.2, 0.3, size=(CHANNELS, 1, 1))
    response = rng.normal(0.0, 1.0, size=(CHANNELS, 1, 1))
    noise = rng.normal(0.0, 0.3, size=(CHANNELS, HEIGHT, WIDTH))
    return np.maximum(0.0, level + response * spot + noise)[None].astype(np.float32)


def linear_head() -> PooledHead:
    head = json.loads((MODEL_DIR / "head.json").read_text())
    layer = nn.Linear(CHANNELS, len(head["bias"]))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(head["weight"], dtype=torch.float32))
        layer.bias.copy_(torch.tensor(head["bias"], dtype=torch.float32))
    return PooledHead(layer)


def mlp_head(activation: nn.Module) -> PooledHead:
    # Default (Kaiming-uniform) initialisation: the heads are fixtures for gradients, not trained models.
    return PooledHead(nn.Sequential(nn.Linear(CHANNELS, HIDDEN), activation, nn.Linear(HIDDEN, 2)))


def export(head: PooledHead, path: Path, fixed_batch: int | None = None) -> None:
    torch.onnx.export(
        head.eval(),
        torch.zeros(fixed_batch or 1, CHANNELS, HEIGHT, WIDTH),
        str(path),
        input_names=["features"],
        output_names=["logits"],
        dynamic_axes=None if fixed_batch else {"features": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        do_constant_folding=True,
    )


def grad_cam(head: PooledHead, features: np.ndarray) -> list[dict[str, object]]:
    """Logit, Grad-CAM weights and normalised Grad-CAM map for each class, by autograd in float64."""
    double = copy.deepcopy(head).double()  # float32 weights are exact in float64: no rounding added
    classes = []
    for k in range(2):
        a = torch.tensor(features, dtype=torch.float64, requires_grad=True)
        logit = double(a)[0, k]
        logit.backward()
        assert a.grad is not None
        alpha = a.grad.mean(dim=(2, 3))[0]
        cam = torch.relu((alpha[:, None, None] * a.detach()[0]).sum(dim=0))
        top = float(cam.max())
        normalised = cam / top if top > 0 else cam
        classes.append({
            "classIndex": k,
            "logit": float(logit),
            "weights": [float(x) for x in alpha],
            "map": [float(x) for x in normalised.flatten()],
        })
    return classes


def relu_kink_margin(head: PooledHead, features: np.ndarray) -> float:
    """Smallest shift of one pooled channel that can switch a hidden ReLU on or off.

    Hidden unit j switches when its pre-activation h_j crosses 0; moving pooled channel c by t moves
    h_j by t * W1[j, c]. Central differences with a step below this margin stay on one linear piece
    of the head, where they are exact up to rounding.
    """
    first = head.layers[0]
    with torch.no_grad():
        pooled = torch.tensor(features, dtype=torch.float64).mean(dim=(2, 3))[0]
        w = first.weight.double()
        h = w @ pooled + first.bias.double()
        active = int((h > 0).sum())
        if active in (0, HIDDEN):
            sys.exit(f"all {HIDDEN} hidden units are {'on' if active else 'off'}: the ReLU head would be linear here")
        return float((h.abs() / w.abs().max(dim=1).values).min())


def main() -> None:
    torch.manual_seed(TORCH_SEED)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    features = synthetic_features()
    features_path = OUT_DIR / "features.f32"
    features_path.write_bytes(features.astype("<f4").tobytes())

    heads = {
        "linear": linear_head(),
        "mlp": mlp_head(nn.ReLU()),
        "tanh": mlp_head(nn.Tanh()),
    }
    entries = []
    for name, head in heads.items():
        path = OUT_DIR / f"head-{name}.onnx"
        export(head, path)
        entry: dict[str, object] = {
            "name": name,
            "file": path.name,
            "input": "features",
            "output": "logits",
            "classes": grad_cam(head, features),
        }
        if name == "mlp":
            entry["reluKinkMargin"] = relu_kink_margin(head, features)
            # 2 x 64 shifted copies do not divide into batches of 3: the last batch must be padded.
            fixed = OUT_DIR / "head-mlp-batch3.onnx"
            export(head, fixed, fixed_batch=3)
            entry["fixedBatchFile"] = fixed.name
        entries.append(entry)

    (OUT_DIR / "expected.json").write_text(json.dumps({
        "recipe": "models/demo-tissue-classifier/recipe/export_cam_head_fixtures.py",
        "torch": torch.__version__,
        "features": {
            "file": features_path.name,
            "dims": [1, CHANNELS, HEIGHT, WIDTH],
            "sha256": hashlib.sha256(features_path.read_bytes()).hexdigest(),
        },
        "heads": entries,
    }, indent=1) + "\n")

    total = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    if total >= MAX_FIXTURE_BYTES:
        sys.exit(f"test/fixtures/cam holds {total} bytes; the fixtures must stay under {MAX_FIXTURE_BYTES}")
    print(f"wrote {len(entries)} heads and their references to {OUT_DIR} ({total} bytes)")


if __name__ == "__main__":
    main()
