"""Write the project's own .tflite test models, byte for byte (needs scikit-learn).

    python examples/make_tflite.py     # rewrites the four files below, prints accuracies

- examples/digits_fc.tflite: the digits MLP of examples/digits_mlp.npz (64 -> 32 -> 10,
  int8, weights per tensor) as two FULLY_CONNECTED operators;
- examples/digits_fc_legacy.tflite: the same model with its operator codes only in the
  deprecated 8-bit field, as files written before TensorFlow 2.4 have them;
- examples/digits_fc_channel.tflite: the same float MLP quantized with one weight scale
  per output channel;
- examples/digits_cnn.tflite: a small CNN (CONV_2D, DEPTHWISE_CONV_2D and a 1x1 CONV_2D
  with per-channel scales, then FULLY_CONNECTED), trained here (prune8_eval.cnn).

All take examples/digits_test.npz's images: 64 int8 values, scale 1/255, zero point -128
(the CNN as 8x8x1). The models are written with TFLM's schema (prune8_eval.tflite_build);
TFLM's interpreter runs them in tests/files/test_tflite.py.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))  # prune8_eval

from prune8_eval import cnn, digits, ptq, tflite_build
from prune8_host.files.model import load_model
from prune8_host.files.output import write_output

HERE = Path(__file__).resolve().parent
FILES = {name: HERE / f"{name}.tflite" for name in
         ("digits_fc", "digits_fc_legacy", "digits_fc_channel", "digits_cnn")}


def build() -> dict[str, bytes]:
    mlp_model = load_model(HERE / "digits_mlp.npz")
    data = digits.load()
    per_channel = ptq.quantize_mlp(digits.train_float(data), data.x_calib, per_channel=True)
    cnn_bytes, _ = cnn.quantize(cnn.train(cnn.init(), data.x_train, data.y_train),
                                data.x_calib)
    return {
        "digits_fc": tflite_build.fc_chain(mlp_model, description="prune8 digits MLP"),
        "digits_fc_legacy": tflite_build.fc_chain(
            mlp_model, legacy_opcodes=True, description="prune8 digits MLP, legacy opcodes"),
        "digits_fc_channel": tflite_build.fc_chain(
            per_channel, description="prune8 digits MLP, per-channel weight scales"),
        "digits_cnn": cnn_bytes,
    }


def main() -> None:
    from tflite_micro.python.tflite_micro import runtime

    test = np.load(HERE / "digits_test.npz")
    for name, data in build().items():
        write_output(FILES[name], data)
        it = runtime.Interpreter.from_bytes(data)
        shape = it.get_input_details(0)["shape"]
        correct = 0
        for x, y in zip(test["images"], test["labels"]):
            it.set_input(x.reshape(shape), 0)
            it.invoke()
            correct += int(it.get_output(0).argmax() == y)
        print(f"{FILES[name].name}: {len(data)} bytes, TFLM accuracy "
              f"{correct}/{len(test['labels'])} = {correct / len(test['labels']):.2%}")


if __name__ == "__main__":
    main()
