"""Regenerate the digits example files, byte for byte (needs scikit-learn for the data).

    python examples/make_digits.py   # rewrites the three files below, prints accuracies

- examples/digits_mlp.npz: the int8 MLP 64 -> 32 -> 10 in the prune8 model format:
  layers fc1 (32 x 64 = 2048 weights, the default ESP32 capacity) and fc2 (10 x 32),
  their gradient-proxy activations fc1.act / fc2.act (the calibration statistic), and
  the TFLM inference parameters fc1.bias, fc1.mult, fc1.shift, fc1.relu, fc1.in_zp,
  fc1.out_zp and the scales fc1.in_scale, fc1.w_scale, fc1.out_scale (likewise fc2).
- examples/digits_test.npz: the 360 test images as the model's int8 input ("images",
  (360, 64)) and their digits ("labels", uint8).
- examples/digits_calib.npz: the 256 calibration images (from the training split), same
  layout: what fc1.act and fc2.act were computed from.

The recipe (split, training, quantization) is prune8_host.digits.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))  # prune8_eval

from prune8_eval import digits, mlp
from prune8_host.files.model import save_model
from prune8_host.files.npzio import save_npz
from prune8_host.twin import dense as qnn

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_mlp.npz"
TEST = HERE / "digits_test.npz"
CALIB = HERE / "digits_calib.npz"


def build() -> dict:
    """What the three files hold, plus the float model and its test accuracy."""
    data = digits.load()
    m = digits.train_float(data)
    model = digits.quantize(m, data)
    return {
        "float": m,
        "float_accuracy": mlp.accuracy(m, data.x_test, data.y_test),
        "model": model,
        "test": {"images": digits.quantize_images(model, data.x_test),
                 "labels": data.y_test.astype(np.uint8)},
        "calib": {"images": digits.quantize_images(model, data.x_calib),
                  "labels": data.y_calib.astype(np.uint8)},
    }


def write(out_dir: Path = HERE) -> dict:
    b = build()
    save_model(out_dir / MODEL.name, b["model"])
    save_npz(out_dir / TEST.name, b["test"])
    save_npz(out_dir / CALIB.name, b["calib"])
    return b


if __name__ == "__main__":
    b = write()
    acc = qnn.accuracy(b["model"], b["test"]["images"], b["test"]["labels"])
    print(f"wrote {MODEL.name}, {TEST.name}, {CALIB.name} in {HERE}")
    print(f"test accuracy: float {b['float_accuracy']:.4f}, int8 {acc:.4f} "
          f"({len(b['test']['labels'])} images)")
