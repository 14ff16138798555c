"""A ResNet-18 tile model with the cost of a real one, for the whole-slide overhead benchmark only.

Random weights (seed 0): it measures time, not accuracy, and must never be used to score a slide for
anyone. Writes model.onnx and manifest.yaml into the folder given as the first argument.
"""
import hashlib
import pathlib
import sys

import torch
import torchvision

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
net = torch.nn.Sequential(torchvision.models.resnet18(num_classes=2), torch.nn.Softmax(dim=1)).eval()
torch.onnx.export(
    net, torch.zeros(1, 3, 224, 224), str(out / "model.onnx"), input_names=["image"], output_names=["probabilities"],
    dynamic_axes={"image": {0: "n"}, "probabilities": {0: "n"}}, opset_version=13,
)
sha = hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
(out / "manifest.yaml").write_text(f"""name: bench-resnet18
version: 0.0.0
kind: onnx
artifact: model.onnx
sha256: {sha}
inputs:
  name: image
  preprocess:
    resize: {{ width: 224, height: 224, fit: fill }}
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
outputs:
  name: probabilities
  activation: none
  labels:
    - {{ code: benign-pattern, display: Benign-like }}
    - {{ code: tumour-pattern, display: Tumour-like }}
tiles:
  mpp: 0.5
  size: 224
  scoreClass: tumour-pattern
  pooling: {{ kind: mean }}
intendedUse: Benchmark timing only (random weights). Never for scoring.
trainingData: none (random initialisation, seed 0)
""")
print(out / "model.onnx", sha)
