"""A model with one output, and the data file `prune8 eval` takes for it: the sine example.

    python examples/make_sine.py [DIR]   # writes DIR/sine.tflite and DIR/sine_test.npz
    prune8 eval DIR/sine.tflite --data DIR/sine_test.npz

- sine.tflite: an int8 MLP 1 -> 16 -> 16 -> 1 (two FULLY_CONNECTED with ReLU, then one
  without) that approximates y = sin(x) on [0, 2 pi], trained here in NumPy and
  quantized as TensorFlow's converter does (prune8_eval.ptq, prune8_eval.tflite_build).
- sine_test.npz, the data format of `prune8 eval MODEL.tflite --data FILE`:
  `images`: int8, shape (n, values per input), each row one input in the model's own
  quantization (x_q = round(x / in_scale) + in_zp, clamped to -128..127), as many values
  as the input tensor holds, in its order; `labels`: shape (n,), the expected outputs in
  real units (float32 here; integer class indices for a classifier, whose output has one
  value per class).

The data depend only on the seeds below; the model on NumPy's float arithmetic too (it is
not shipped, so it need not be the same bytes on every machine).
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))  # prune8_eval

from prune8_eval import ptq, tflite_build
from prune8_host.files.npzio import save_npz
from prune8_host.files.output import write_output
from prune8_host.twin.layer import Layer

HIDDEN, STEPS, LR, SEED = 16, 3000, 0.01, 22
TEST = 200


def _forward(p: dict, x: np.ndarray):
    h1 = np.maximum(x @ p["w1"].T + p["b1"], 0.0)
    h2 = np.maximum(h1 @ p["w2"].T + p["b2"], 0.0)
    return h1, h2, h2 @ p["w3"].T + p["b3"]


def train() -> dict:
    """Float weights of the MLP, by Adam on the mean squared error over 512 points."""
    rng = np.random.default_rng(SEED)
    x = np.linspace(0, 2 * np.pi, 512)[:, None]
    y = np.sin(x)
    shapes = {"w1": (HIDDEN, 1), "b1": (HIDDEN,), "w2": (HIDDEN, HIDDEN), "b2": (HIDDEN,),
              "w3": (1, HIDDEN), "b3": (1,)}
    p = {k: (rng.normal(0, np.sqrt(2.0 / s[1]), s) if k[0] == "w" else np.zeros(s))
         for k, s in shapes.items()}
    # each first-layer unit's kink somewhere in [0, 2 pi]: none starts dead on all inputs
    p["b1"] = -p["w1"][:, 0] * rng.uniform(0, 2 * np.pi, HIDDEN)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    for step in range(1, STEPS + 1):
        h1, h2, out = _forward(p, x)
        d3 = 2 * (out - y) / len(x)
        d2 = (d3 @ p["w3"]) * (h2 > 0)
        d1 = (d2 @ p["w2"]) * (h1 > 0)
        grads = {"w3": d3.T @ h2, "b3": d3.sum(0), "w2": d2.T @ h1, "b2": d2.sum(0),
                 "w1": d1.T @ x, "b1": d1.sum(0)}
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            p[k] -= LR * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step))
                                                        + 1e-8)
    return p


def quantize(p: dict) -> dict[str, Layer]:
    """The int8 layers fc1, fc2, fc3 with their TFLM parameters (activation ranges from
    the training inputs)."""
    x = np.linspace(0, 2 * np.pi, 512)[:, None]
    h1, h2, out = _forward(p, x)
    q_in = ptq.activation_params(x.min(), x.max())
    q1, q2 = ptq.activation_params(0.0, h1.max()), ptq.activation_params(0.0, h2.max())
    q_out = ptq.activation_params(out.min(), out.max())
    return {"fc1": ptq.quantize_layer("fc1", p["w1"], p["b1"], q_in, q1, relu=1),
            "fc2": ptq.quantize_layer("fc2", p["w2"], p["b2"], q1, q2, relu=1),
            "fc3": ptq.quantize_layer("fc3", p["w3"], p["b3"], q2, q_out, relu=0)}


def build() -> tuple[bytes, dict[str, np.ndarray]]:
    """(the .tflite bytes, the test data arrays)."""
    layers = quantize(train())
    model = tflite_build.fc_chain(layers, description="prune8 sine example")
    first = layers["fc1"].quant
    x = np.random.default_rng(SEED + 1).uniform(0, 2 * np.pi, (TEST, 1))
    images = ptq.quantize_activations(x, first["in_scale"], int(first["in_zp"]))
    return model, {"images": images, "labels": np.sin(x[:, 0]).astype(np.float32)}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    model, data = build()
    write_output(out / "sine.tflite", model)
    save_npz(out / "sine_test.npz", data)
    print(f"{out / 'sine.tflite'}: {len(model)} bytes; {out / 'sine_test.npz'}: "
          f"{len(data['labels'])} inputs")


if __name__ == "__main__":
    main()
