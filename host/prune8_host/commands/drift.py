"""How far a prune moved a .tflite's outputs, for run and apply: TFLM's interpreter on the
host runs the dense and the pruned model on --data's images when given, else on inputs
drawn from the int8 input range with a fixed seed, and the report says which."""

from __future__ import annotations

import numpy as np

from prune8_host.errors import UsageError
from prune8_host.files import tflite
from prune8_host.files.images import load_images
from prune8_host.files.npzio import load_arrays
from prune8_host.twin import tflm


def add_data_arg(p) -> None:
    p.add_argument("--data", metavar="FILE",
                   help="for a .tflite: int8 inputs (.npz with 'images', n x inputs) on "
                        "which to measure how far the pruned outputs moved from the dense "
                        f"ones (default: {tflm.DRAWN_INPUTS} inputs drawn from the int8 "
                        f"input range, seed {tflm.DRAW_SEED}); shrink and run --structured "
                        f"channels -o SMALL.tflite also print the dense and small model's "
                        f"accuracy on its 'labels' (RMSE for real-valued labels)")


def check_data(data, model, path) -> None:
    """Refuse --data before any work: unreadable, or given for a model that is no .tflite."""
    if data is None:
        return
    if model.kind != "tflite":
        raise UsageError(f"{data}: --data measures how a .tflite's outputs moved, and "
                         f"{path} is an .{model.kind} model (prune8 eval takes test data "
                         f"for it)")
    load_images(data, with_labels=False)


def measure(data, model, weights) -> tuple[dict, str] | None:
    """({report}, line) for a .tflite model pruned to `weights` ({layer: int8}), or None
    for another kind of model."""
    if model.kind != "tflite":
        return None
    with tflm.naming(model.path):
        return _measure(data, model, weights)


def inputs(data, dense: bytes) -> tuple:
    """(images, what they are, in words) a .tflite's outputs are compared on: --data's
    images, else inputs drawn from the int8 input range."""
    if data:
        images, _ = load_images(data, with_labels=False)
        return images, f"{data}'s {len(images)} images"
    images = tflm.drawn_inputs(dense)
    return images, (f"{len(images)} inputs drawn from the int8 input range (seed "
                    f"{tflm.DRAW_SEED}; --data FILE for real ones)")


def quality(data, images, dense: bytes, small: bytes) -> tuple[dict, str] | None:
    """(report, line) of how well the dense and the small model do on --data's labels
    (`images` are its images, as `inputs` read them), by TFLM: accuracy for integer
    labels (classes), RMSE of the real output for real ones (a regression); None
    without labels."""
    if not data:
        return None
    labels = load_arrays(data).get("labels")
    if labels is None or labels.shape != (len(images),):
        return None
    if labels.dtype.kind in "iub":
        (d, n), (s, _) = tflm.accuracy(dense, images, labels), tflm.accuracy(small, images,
                                                                              labels)
        return ({"metric": "accuracy", "dense": d / n, "small": s / n, "n": n},
                f"accuracy on {data}'s {n} labelled images (TFLM): dense {d / n:.2%}, "
                f"small {s / n:.2%} ({(s - d) / n * 100:+.2f} points)")
    rmse = [float(np.sqrt(np.mean((tflm.real_outputs(m, images).reshape(len(images), -1)[:, 0]
                                   - labels.astype(np.float64)) ** 2))) for m in (dense, small)]
    return ({"metric": "rmse", "dense": rmse[0], "small": rmse[1], "n": len(images)},
            f"error on {data}'s {len(images)} labelled inputs (TFLM, RMSE of the first "
            f"output against the labels): dense {rmse[0]:.4g}, small {rmse[1]:.4g}")


def _measure(data, model, weights) -> tuple[dict, str]:
    dense = model.tflite_model.data
    pruned = tflite.pruned_bytes(model.tflite_model, weights)
    images, source = inputs(data, dense)
    d = tflm.drift(dense, pruned, images)
    d["source"] = "data" if data else "drawn"
    return d, tflm.drift_line(d, source)
