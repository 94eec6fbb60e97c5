"""Write the project's MobileNet-style .tflite, byte for byte (needs scikit-learn).

    python examples/make_mobilenet.py   # rewrites the file below, prints its figures

- examples/digits_mobilenet.tflite: a MobileNet-style CNN trained here on the digits
  (prune8_eval.mobilenet): a 3x3 CONV_2D stem, four depthwise-separable blocks
  (DEPTHWISE_CONV_2D 3x3 + CONV_2D 1x1, ReLU6; the first with stride 2, two with a
  residual ADD), a MEAN over the 8x8 map and a FULLY_CONNECTED classifier; int8, conv
  weights per channel, the FC's per tensor, activation ranges from the first 256
  training images, as the TensorFlow Lite converter quantizes.

Its input is 16x16x1: the digits upsampled by nearest neighbour (each pixel repeated 2x2),
int8 at scale 1/255, zero point -128 — examples/digits_wide_test.npz's images, which are
examples/digits_test.npz's repeated. Training takes a few minutes on two cores.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))  # prune8_eval

from prune8_eval import digits
from prune8_eval import mobilenet as mn
from prune8_host.files.output import write_output

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_mobilenet.tflite"
TEST = HERE / "digits_wide_test.npz"   # the held-out digits as this model's input


def build() -> dict:
    """The trained float model, its .tflite bytes and its float test accuracy."""
    data = digits.load()
    p = mn.train(mn.init(), mn.upsample(data.x_train), data.y_train)
    tflite, _ = mn.quantize(p, mn.upsample(data.x_calib))
    return {"params": p, "tflite": tflite,
            "float_accuracy": mn.accuracy(p, mn.upsample(data.x_test), data.y_test)}


def invoke_seconds(model: bytes, image: np.ndarray, runs: int = 200) -> float:
    """The median time of one TFLM invoke of the model on one image."""
    from prune8_host.twin import tflm
    it = tflm.interpreter(model)
    it.set_input(image.reshape(1, mn.SIDE, mn.SIDE, 1), 0)
    it.invoke()  # a warm-up, left out of the count
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    from prune8_host.twin import tflm

    b = build()
    write_output(MODEL, b["tflite"])
    test = np.load(TEST)
    correct, n = tflm.accuracy(b["tflite"], test["images"], test["labels"])
    print(f"{MODEL.name}: {len(b['tflite'])} bytes; test accuracy float "
          f"{b['float_accuracy']:.2%}, TFLM int8 {correct}/{n} = {correct / n:.2%}")
    macs, size = mn.macs(), mn.weight_bytes()
    for name in mn.LAYERS:
        print(f"  {name:6} {macs[name]:>8,} MACs  {size[name]:>6,} weight+bias bytes")
    print(f"  total  {sum(macs.values()):>8,} MACs  {sum(size.values()):>6,} weight+bias bytes")
    print(f"TFLM invoke: median {invoke_seconds(b['tflite'], test['images'][0]) * 1e6:.0f} us "
          f"of 200")


if __name__ == "__main__":
    main()
