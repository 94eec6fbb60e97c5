"""TensorFlow Lite Micro's own interpreter (PyPI tflite-micro: the reference kernels,
compiled), the judge of int8 inference: twin.dense must give its outputs bit for bit on
FULLY_CONNECTED models (docs/spec.md §8), and it scores .tflite models prune8 cannot run
itself (conv)."""

from __future__ import annotations

import numpy as np

from prune8_host.errors import ModelError


def interpreter(model: bytes):
    """A TFLM interpreter over a .tflite file's bytes."""
    from tflite_micro.python.tflite_micro import runtime
    try:
        return runtime.Interpreter.from_bytes(bytes(model))
    except (RuntimeError, ValueError) as e:
        raise ModelError(f"TFLM cannot load the model: {e}") from None


def outputs(model: bytes, images: np.ndarray) -> np.ndarray:
    """The model's int8 output for every image (images: (n, ...) int8, each image as many
    values as the model's input, in its order)."""
    it = interpreter(model)
    shape = tuple(int(d) for d in it.get_input_details(0)["shape"])  # plain ints, not NumPy's
    dtype = it.get_input_details(0)["dtype"]
    x = np.asarray(images)
    if x.dtype != np.int8 or dtype != np.int8:
        raise ModelError(f"the model's input is {np.dtype(dtype).name} and the images "
                         f"{x.dtype.name}: both must be int8")
    per_image = int(np.prod(shape))
    if x.ndim < 2 or x[0].size != per_image:
        raise ModelError(f"images of {x[0].size if x.ndim else 0} values for a model input "
                         f"of shape {list(shape)} ({per_image} values)")
    out = []
    for image in x:
        it.set_input(image.reshape(shape), 0)
        it.invoke()
        out.append(np.asarray(it.get_output(0)).reshape(-1).copy())
    return np.stack(out)


def accuracy(model: bytes, images: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """(correct, n): the largest output (the lowest index among equals) against labels."""
    predicted = outputs(model, images).argmax(axis=1)
    return int(np.count_nonzero(predicted == np.asarray(labels))), len(labels)
