"""Regenerate the wide digits example, a model with a layer bigger than RAM (needs
scikit-learn for the data).

    python examples/make_wide.py   # rewrites the two files below, prints accuracies

- examples/digits_wide.npz: an int8 MLP 256 -> 256 -> 10 on the digits upscaled to
  16 x 16 (each pixel repeated 2 x 2), in the prune8 model format: fc1 has 256 x 256 =
  65,536 weights, the size of a 1x1 convolution of the TensorFlow Lite Micro
  person-detection model and 32 times the default ESP32 capacity, so the board prunes
  and runs it from flash, tile by tile (docs/streaming.md); fc2 is 10 x 256 (2560).
  With the gradient proxy's activations and the TFLM inference parameters, as
  examples/digits_mlp.npz.
- examples/digits_wide_test.npz: the 360 test images as its int8 input ("images",
  (360, 256)) and their digits ("labels").

The recipe is prune8_eval.digits' (same split, training and quantization) with
256 inputs and 256 hidden units.
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))  # prune8_eval

from prune8_eval import digits, mlp, ptq
from prune8_host.files.model import save_model
from prune8_host.files.npzio import save_npz
from prune8_host.twin import dense as qnn

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_wide.npz"
TEST = HERE / "digits_wide_test.npz"
HIDDEN = 256
EPOCHS = 12


def upscale(x: np.ndarray) -> np.ndarray:
    """(n, 64) images of 8 x 8 -> (n, 256) of 16 x 16, each pixel a 2 x 2 square."""
    return np.kron(x.reshape(-1, 8, 8), np.ones((2, 2))).reshape(-1, 256)


def build() -> dict:
    data = digits.load()
    x_train, x_test = upscale(data.x_train), upscale(data.x_test)
    m = mlp.train(mlp.init(256, HIDDEN, 10, digits.SEED), x_train, data.y_train,
                  epochs=EPOCHS, lr=digits.LR, batch=digits.BATCH, seed=digits.TRAIN_SEED)
    calib = x_train[:digits.N_CALIB]
    model = ptq.quantize_mlp(m, calib)
    first = next(iter(model.values())).quant
    q = lambda x: ptq.quantize_activations(x, first["in_scale"], int(first["in_zp"]))  # noqa: E731
    stats = qnn.activation_stats(model, q(calib))
    model = {name: replace(layer, activations=stats[name]) for name, layer in model.items()}
    return {"model": model, "float_accuracy": mlp.accuracy(m, x_test, data.y_test),
            "test": {"images": q(x_test), "labels": data.y_test.astype(np.uint8)}}


def write(out_dir: Path = HERE) -> dict:
    b = build()
    save_model(out_dir / MODEL.name, b["model"])
    save_npz(out_dir / TEST.name, b["test"])
    return b


if __name__ == "__main__":
    b = write()
    acc = qnn.accuracy(b["model"], b["test"]["images"], b["test"]["labels"])
    print(f"wrote {MODEL.name}, {TEST.name} in {HERE}")
    print(f"test accuracy: float {b['float_accuracy']:.4f}, int8 {acc:.4f}")
