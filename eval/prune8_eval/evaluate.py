"""make eval: does it prune well? Accuracy of the int8 digits model against sparsity.

For every sparsity 0%, 5%, ..., 95% and every method, the two layers of
examples/digits_mlp.npz are pruned and the int8 model (`qnn`, bit-exact with the board)
is scored on the 360 test images, once as pruned ("one-shot") and once after a short
masked fine-tuning on the host (a few epochs of SGD that keep pruned weights at zero,
then quantization again from scratch):

- magnitude, gradient proxy (activations: the calibration statistic fc1.act / fc2.act),
  min-cut: the twin's masks (`twin.reference.layer_mask`, tie = exact), each layer at the
  same sparsity;
- rows: structured, L1 norm of fc1's rows; removing row r of fc1 removes hidden neuron
  r, so its bias and fc2's column r go too (k = floor(32 * s) neurons);
- random: seeded random masks pruning the same k weights per layer;
- peers: PyTorch's torch.nn.utils.prune.l1_unstructured and ln_structured (n=1, rows)
  on the same int8 weights as float tensors, with the same k;
- sparsegpt: SparseGPT (`prune8_eval.sparsegpt`) on the int8 model's real weights, its
  Hessians from the calibration images (examples/digits_calib.npz), then quantized anew
  as ptq does; a control, magnitude-rq, quantizes magnitude's pruned model anew the same
  way, to tell the weight updates from the requantization.

Iterative magnitude pruning (`prune8_eval.iterative`) is a series of its own: one run of
IMP_ROUNDS rounds to 95% per rewind (init, early epoch, none), every round's model
evaluated; beside it, at the same per-layer counts, magnitude one-shot, magnitude with
the short fine-tuning, and a control that retrains a one-shot magnitude mask as long
as one IMP round trains (is it the iterating, or the training?).

Writes docs/eval/accuracy.csv, accuracy.png and README.md (`prune8_eval.report`).
Needs the eval extra (torch, scikit-learn, matplotlib): `make eval` installs it.

    python -m prune8_eval.evaluate [--out docs/eval] [--epochs 5] [--step-bp 500]
                                   [--imp-rounds 13] [--imp-epochs 20]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from prune8.bp import prune_count as _spec_k
from prune8_host.files.model import load_model
from prune8_host.twin.dense import accuracy, logits, predict
from prune8_host.twin.layer import Layer
from prune8_host.twin.reference import layer_mask, weight_keep
from prune8_host.twin.shrink import shrink

from . import digits, mlp, ptq, sparsegpt
from . import iterative as imp
from .mlp import MLP
from .series import (
    CONTROLS,
    IMP_SERIES,
    LABELS,
    SERIES,
    SHORT,
    STRUCTURED,
    UNSTRUCTURED,
    Result,
)

ROOT = Path(__file__).resolve().parents[2]  # the checkout: eval/ is not installed
MODEL = ROOT / "examples" / "digits_mlp.npz"
TEST = ROOT / "examples" / "digits_test.npz"
CALIB = ROOT / "examples" / "digits_calib.npz"
SEED = 20261122
FT_EPOCHS = 5
FT_LR = 0.01
# IMP: rounds of 20 epochs at the recipe's learning rate, 13 rounds to 95% (each prunes
# 20.6% of what remains, near the lottery-ticket papers' 20%); the dense round is the
# recipe's own training (60 epochs), the early rewind point its epoch 2 (3% of it).
IMP_ROUNDS = 13
IMP_FINAL_BP = 9500
IMP_EPOCHS = 20
IMP_REWIND_EPOCH = 2
# SparseGPT's calibration error against magnitude pruning's, reported at these sparsities
RECON_BPS = (5000, 8000, 9000, 9500)


# -- masks ------------------------------------------------------------------------------

def prune_count(n: int, bp: int) -> int:
    """k of docs/spec.md §1.4 with min_keep = 1: what every method prunes, per layer or
    per unit."""
    return _spec_k(n, bp, 1)


def torch_l1_keep(w: np.ndarray, k: int) -> np.ndarray:
    """Keep flags (w's shape) of torch.nn.utils.prune.l1_unstructured pruning k weights."""
    import torch
    from torch.nn.utils import prune
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.astype(np.float32)))
    prune.l1_unstructured(lin, "weight", amount=int(k))
    return lin.weight_mask.numpy().astype(bool)


def torch_ln_rows_keep(w: np.ndarray, k: int) -> np.ndarray:
    """Keep flags per row of torch.nn.utils.prune.ln_structured (n=1, dim=0), k rows."""
    import torch
    from torch.nn.utils import prune
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.astype(np.float32)))
    prune.ln_structured(lin, "weight", amount=int(k), n=1, dim=0)
    return lin.weight_mask.numpy()[:, 0].astype(bool)


def keep_masks(model: dict[str, Layer], method: str, bp: int
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(per-weight keep flags per layer, per-row bias keep flags per layer) of a method."""
    names = list(model)
    keep = {n: np.ones(model[n].weights.shape, bool) for n in names}
    bias_keep: dict[str, np.ndarray] = {}
    if method in STRUCTURED:
        # every layer but the last loses whole rows = neurons; the next layer's columns
        # that read them go with them
        for i, name in enumerate(names[:-1]):
            w = model[name].weights
            if method == "rows":
                rows = weight_keep(layer_mask(model[name], "rows", sparsity_bp=bp))[:, 0]
            else:
                rows = torch_ln_rows_keep(w, prune_count(w.shape[0], bp))
            keep[name] &= rows[:, None]
            bias_keep[name] = rows
            keep[names[i + 1]] &= rows[None, :]
        return keep, bias_keep
    for i, name in enumerate(names):
        layer = model[name]
        if method in UNSTRUCTURED:
            keep[name] = weight_keep(layer_mask(layer, method, sparsity_bp=bp))
        elif method == "random":
            n = layer.n
            rng = np.random.default_rng([SEED, bp, i])
            flat = np.ones(n, bool)
            flat[rng.choice(n, prune_count(n, bp), replace=False)] = False
            keep[name] = flat.reshape(layer.weights.shape)
        elif method == "torch-l1":
            keep[name] = torch_l1_keep(layer.weights, prune_count(layer.n, bp))
        else:  # sparsegpt changes the kept weights too: sparsegpt_model, not a mask
            raise ValueError(f"unknown method {method!r}")
    return keep, bias_keep


def apply_keep(model: dict[str, Layer], keep, bias_keep) -> dict[str, Layer]:
    out = {}
    for name, layer in model.items():
        quant = dict(layer.quant)
        if name in bias_keep:
            quant["bias"] = np.where(bias_keep[name], quant["bias"], 0).astype(np.int32)
        out[name] = replace(layer, weights=np.where(keep[name], layer.weights, 0)
                            .astype(np.int8), quant=quant)
    return out


def masks_agree(model: dict[str, Layer], ours: str, peer: str, bp: int) -> tuple[bool, bool]:
    """(identical, differ only among ties): method `ours` against PyTorch's `peer` at bp.
    Ties: weights (or rows) whose magnitude (L1 norm) equals the largest pruned one."""
    a, _ = keep_masks(model, ours, bp)
    b, _ = keep_masks(model, peer, bp)
    identical = all(np.array_equal(a[n], b[n]) for n in model)
    ties_only = True
    for name, layer in model.items():
        if ours in STRUCTURED:
            score = np.abs(layer.weights.astype(np.int64)).sum(axis=1)[:, None] \
                * np.ones(layer.weights.shape, np.int64)
        else:
            score = np.abs(layer.weights.astype(np.int64))
        differ = a[name] != b[name]
        if differ.any():
            pruned = ~a[name] | ~b[name]
            top = score[pruned].max()
            ties_only &= bool(np.all(score[differ] == top)) and \
                int(np.count_nonzero(~a[name])) == int(np.count_nonzero(~b[name]))
    return identical, ties_only


# -- models made anew: fine-tuning, SparseGPT ---------------------------------------------

def _check_pruned_zero(q: dict[str, Layer], keep) -> None:
    for name in keep:  # a pruned weight is exactly 0.0 in float, so 0 in int8
        assert not np.any(q[name].weights[~keep[name]]), name


def finetune(model: dict[str, Layer], keep, bias_keep, data: digits.Digits, epochs: int,
             seed: int) -> dict[str, Layer]:
    """Masked SGD from the pruned int8 model's real values, then quantized anew."""
    start = ptq.dequantize_mlp(model)
    masks = {"w1": keep["fc1"].astype(np.float64), "w2": keep["fc2"].astype(np.float64)}
    if "fc1" in bias_keep:
        masks["b1"] = bias_keep["fc1"].astype(np.float64)
    tuned = mlp.train(start, data.x_train, data.y_train, epochs=epochs, lr=FT_LR, seed=seed,
                      batch=digits.BATCH, masks=masks)
    q = digits.quantize(tuned, data)
    _check_pruned_zero(q, keep)
    return q


def calib_inputs(model: dict[str, Layer]) -> np.ndarray:
    """fc1's float inputs on the calibration images: examples/digits_calib.npz's int8
    images as real values, in_scale * (q - in_zp)."""
    q = model["fc1"].quant
    images = np.load(CALIB)["images"]
    return (images.astype(np.float64) - int(q["in_zp"])) * float(q["in_scale"])


def sparsegpt_model(start: MLP, calib: np.ndarray, bp: int, data: digits.Digits
                    ) -> tuple[dict[str, Layer], dict[str, np.ndarray]]:
    """SparseGPT on the float model `start` (both layers at bp), quantized anew as ptq
    does (activation ranges from the recipe's calibration images): (int8 model, keep)."""
    pruned, keep = sparsegpt.prune_mlp(start, calib, bp)
    q = digits.quantize(pruned, data)
    _check_pruned_zero(q, keep)
    return q, keep


def requantized(model: dict[str, Layer], data: digits.Digits) -> dict[str, Layer]:
    """The int8 model's real values quantized anew, as sparsegpt_model's output is."""
    return digits.quantize(ptq.dequantize_mlp(model), data)


def reconstruction(start: MLP, calib: np.ndarray, bps=RECON_BPS) -> list[dict]:
    """Per layer and sparsity, ||W X^T - W' X^T|| on the calibration inputs X (fc1: the
    images; fc2: the dense model's hidden activations) for SparseGPT and for magnitude
    pruning of the same float weights, same k."""
    hidden = mlp.forward(start, calib)[1]
    out = []
    for bp in bps:
        for name, w, x in (("fc1", start.w1, calib), ("fc2", start.w2, hidden)):
            ours, _ = sparsegpt.prune_layer(w, x, bp)
            k = sparsegpt.prune_count(w.size, bp)
            mag = w * imp.magnitude_keep(w, np.ones(w.shape, bool), k)
            out.append({"bp": bp, "layer": name,
                        "sparsegpt": sparsegpt.reconstruction_error(w, ours, x),
                        "magnitude": sparsegpt.reconstruction_error(w, mag, x)})
    return out


def _score(model: dict[str, Layer], data: digits.Digits) -> int:
    x = digits.quantize_images(model, data.x_test)
    return int(np.count_nonzero(predict(model, x) == data.y_test))


# -- iterative magnitude pruning ------------------------------------------------------------

def imp_series(dense: imp.DenseRun, shipped: dict[str, Layer], data: digits.Digits, *,
               rounds: int, epochs: int, ft_epochs: int, log=print) -> list[Result]:
    """IMP with each rewind, every round's model quantized and scored; and at the same
    per-layer counts: magnitude one-shot on the shipped model, magnitude + ft_epochs of
    fine-tuning, and one-shot magnitude on the dense float model retrained for one IMP
    round's epochs (the `retrain` control; it is IMP-none's first round at round 1)."""
    total = sum(layer.n for layer in shipped.values())
    n = data.y_test.size
    s = IMP_FINAL_BP / 10000
    # the sparsity "asked for" at round r, 1 - (1 - s)^(r/R) in whole bp (the last: s
    # itself), names the point as the grid's bp does, and seeds fine-tuning alike: the
    # last round's magnitude columns are the grid's 95% results
    asked = [int(10000 * (1 - (1 - s) ** (r / rounds)) + 0.5) for r in range(1, rounds)]
    asked.append(IMP_FINAL_BP)
    results: list[Result] = []
    counts = None
    for rewind in imp.REWINDS:
        t = time.perf_counter()
        _, history = imp.iterative_magnitude_pruning(
            dense, data.x_train, data.y_train, rounds=rounds, final_sparsity=s, rewind=rewind,
            lr=digits.LR, seed=digits.TRAIN_SEED, batch=digits.BATCH, retrain_epochs=epochs)
        for h in history:
            q = digits.quantize(h.model, data)
            _check_pruned_zero(q, h.keep)
            results.append(Result(f"imp-{rewind}", True, asked[h.round - 1], h.pruned_total,
                                  total, _score(q, data), n, h.round * epochs, "imp"))
        counts = [h.pruned for h in history]
        log(f"  {'imp-' + rewind:<12} {time.perf_counter() - t:5.1f} s")
    t = time.perf_counter()
    for bp, pruned in zip(asked, counts):
        done = sum(pruned.values())
        keep = {name: imp.magnitude_keep(shipped[name].weights,
                                         np.ones(shipped[name].weights.shape, bool),
                                         pruned[name]) for name in shipped}
        one_shot = apply_keep(shipped, keep, {})
        results.append(Result("magnitude", False, bp, done, total, _score(one_shot, data), n,
                              0, "imp"))
        tuned = finetune(one_shot, keep, {}, data, ft_epochs, SEED + bp)
        results.append(Result("magnitude", True, bp, done, total, _score(tuned, data), n,
                              ft_epochs, "imp"))
        keep_f = {name: imp.magnitude_keep(getattr(dense.trained, f),
                                           np.ones(getattr(dense.trained, f).shape, bool),
                                           pruned[name]) for name, f in imp.LAYERS.items()}
        start = imp.rewind_point("none", dense, dense.trained, keep_f)
        masks = {f: keep_f[name].astype(np.float64) for name, f in imp.LAYERS.items()}
        model = mlp.train(start, data.x_train, data.y_train, epochs=epochs, lr=digits.LR,
                          seed=digits.TRAIN_SEED + 1, batch=digits.BATCH, masks=masks)
        q = digits.quantize(model, data)
        _check_pruned_zero(q, keep_f)
        results.append(Result("retrain", True, bp, done, total, _score(q, data), n, epochs,
                              "imp"))
    log(f"  {'imp controls':<12} {time.perf_counter() - t:5.1f} s")
    return results


# -- the sweep -------------------------------------------------------------------------------

def sweep(epochs: int = FT_EPOCHS, step_bp: int = 500, methods=SERIES, log=print,
          imp_rounds: int = IMP_ROUNDS, imp_epochs: int = IMP_EPOCHS) -> dict:
    t0 = time.perf_counter()
    data = digits.load()
    # the recipe's training, kept with its epoch-2 state for IMP's early rewind: its
    # trained model is digits.train_float(data) bit for bit (tests/eval/test_imp.py)
    dense = imp.train_dense(digits.init_float(data), data.x_train, data.y_train,
                            epochs=digits.EPOCHS, rewind_epoch=IMP_REWIND_EPOCH, lr=digits.LR,
                            seed=digits.TRAIN_SEED, batch=digits.BATCH)
    float_model = dense.trained
    shipped = load_model(MODEL)
    rebuilt = digits.quantize(float_model, data)
    for name, layer in shipped.items():
        same = layer.weights.tobytes() == rebuilt[name].weights.tobytes() and \
            layer.activations.tobytes() == rebuilt[name].activations.tobytes() and all(
                np.asarray(a).tobytes() == np.asarray(rebuilt[name].quant[f]).tobytes()
                for f, a in layer.quant.items())
        if not same:
            raise RuntimeError(f"{MODEL.name} is not what the digits recipe makes here: "
                               f"run examples/make_digits.py")
    test = np.load(TEST)
    images, labels = test["images"], test["labels"].astype(np.int64)
    total = sum(layer.n for layer in shipped.values())
    real = ptq.dequantize_mlp(shipped)   # what SparseGPT prunes: the int8 model's values
    calib = calib_inputs(shipped)
    results: list[Result] = []
    shrunk: list[dict] = []
    for method in methods:
        t_method = time.perf_counter()
        for bp in range(0, 10000, step_bp):
            if method == "sparsegpt":
                pruned, keep = sparsegpt_model(real, calib, bp, data)
                bias_keep: dict[str, np.ndarray] = {}
                x = digits.quantize_images(pruned, data.x_test)
            else:
                keep, bias_keep = keep_masks(shipped, method, bp)
                pruned = apply_keep(shipped, keep, bias_keep)
                x = images
            zeroed = total - sum(int(np.count_nonzero(k)) for k in keep.values())
            correct = int(np.count_nonzero(predict(pruned, x) == labels))
            results.append(Result(method, False, bp, zeroed, total, correct, labels.size))
            if method == "rows":
                shrunk.append(_shrink_check(shipped, pruned, bp, images))
            if method == "magnitude":   # the control for SparseGPT's requantization
                correct = _score(requantized(pruned, data), data)
                results.append(Result("magnitude-rq", False, bp, zeroed, total, correct,
                                      labels.size))
            tuned = finetune(pruned, keep, bias_keep, data, epochs, SEED + bp)
            results.append(Result(method, True, bp, zeroed, total, _score(tuned, data),
                                  labels.size, epochs))
        log(f"  {method:<12} {time.perf_counter() - t_method:5.1f} s")
    if imp_rounds:
        results += imp_series(dense, shipped, data, rounds=imp_rounds, epochs=imp_epochs,
                              ft_epochs=epochs, log=log)
    agree = {f"{ours} / {peer}": [masks_agree(shipped, ours, peer, bp)
                                  for bp in range(0, 10000, step_bp)]
             for ours, peer in (("magnitude", "torch-l1"), ("rows", "torch-ln"))
             if ours in methods and peer in methods}
    return {
        "results": results,
        "agreement": agree,
        "shrink": shrunk,
        "reconstruction": reconstruction(real, calib) if "sparsegpt" in methods else [],
        "float_accuracy": mlp.accuracy(float_model, data.x_test, data.y_test),
        "int8_accuracy": accuracy(shipped, images, labels),
        "images": int(labels.size),
        "epochs": epochs,
        "imp": {"rounds": imp_rounds, "epochs": imp_epochs, "final_bp": IMP_FINAL_BP,
                "rewind_epoch": IMP_REWIND_EPOCH, "dense_epochs": digits.EPOCHS,
                "lr": digits.LR, "rate": imp.round_rate(IMP_FINAL_BP / 10000, imp_rounds)
                if imp_rounds else 0.0},
        "seconds": time.perf_counter() - t0,
    }


def _shrink_check(shipped: dict[str, Layer], pruned: dict[str, Layer], bp: int,
                  images: np.ndarray) -> dict:
    """The row-pruned model's neurons removed (prune8 shrink): the same logits on every
    test image, or the eval stops. Returns the shrunk model's size."""
    small = shrink(shipped, [layer_mask(shipped["fc1"], "rows", sparsity_bp=bp)])
    if not np.array_equal(logits(small, images), logits(pruned, images)):
        raise RuntimeError(f"rows at {bp} bp: the shrunk model's logits differ from the "
                           f"masked model's")
    return {"bp": bp, "hidden": int(small["fc1"].weights.shape[0]),
            "weights": sum(layer.n for layer in small.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m prune8_eval.evaluate",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "eval",
                    help="directory for accuracy.csv, accuracy.png and README.md")
    ap.add_argument("--epochs", type=int, default=FT_EPOCHS,
                    help=f"fine-tuning epochs (default {FT_EPOCHS})")
    ap.add_argument("--step-bp", type=int, default=500,
                    help="sparsity step in basis points (default 500 = 5%%)")
    ap.add_argument("--imp-rounds", type=int, default=IMP_ROUNDS,
                    help=f"IMP rounds to {IMP_FINAL_BP // 100}%% (default {IMP_ROUNDS}; 0: "
                         f"no IMP)")
    ap.add_argument("--imp-epochs", type=int, default=IMP_EPOCHS,
                    help=f"training epochs per IMP round (default {IMP_EPOCHS})")
    args = ap.parse_args(argv)
    from . import report  # matplotlib: only when writing the report
    print(f"prune8 eval: {len(SERIES)} methods x {10000 // args.step_bp} sparsities, "
          f"one-shot and fine-tuned ({args.epochs} epochs); IMP {args.imp_rounds} rounds x "
          f"{args.imp_epochs} epochs, 3 rewinds")
    run = sweep(args.epochs, args.step_bp, imp_rounds=args.imp_rounds,
                imp_epochs=args.imp_epochs)
    print(f"float {run['float_accuracy']:.4f}, int8 {run['int8_accuracy']:.4f}; "
          f"sweep {run['seconds']:.1f} s")
    for path in report.write(args.out, run):
        print(f"wrote {path}")
    return 0


__all__ = ["SERIES", "CONTROLS", "IMP_SERIES", "LABELS", "SHORT", "Result", "masks_agree",
           "prune_count", "torch_l1_keep", "torch_ln_rows_keep", "keep_masks", "apply_keep",
           "finetune", "calib_inputs", "sparsegpt_model", "requantized", "reconstruction",
           "imp_series", "sweep", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
