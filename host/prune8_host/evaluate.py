"""make eval: does it prune well? Accuracy of the int8 digits model against sparsity.

For every sparsity 0%, 5%, ..., 95% and every method, the two layers of
examples/digits_mlp.npz are pruned and the int8 model (`qnn`, bit-exact with the board)
is scored on the 360 test images, once as pruned ("one-shot") and once after a short
masked fine-tuning on the host (a few epochs of SGD that keep pruned weights at zero,
then quantization again from scratch):

- magnitude, gradient proxy (activations: the calibration statistic fc1.act / fc2.act),
  min-cut: the twin's masks (`reference.layer_mask`, tie = exact), each layer at the
  same sparsity;
- rows: structured, L1 norm of fc1's rows; removing row r of fc1 removes hidden neuron
  r, so its bias and fc2's column r go too (k = floor(32 * s) neurons);
- random: seeded random masks pruning the same k weights per layer;
- peers: PyTorch's torch.nn.utils.prune.l1_unstructured and ln_structured (n=1, rows)
  on the same int8 weights as float tensors, with the same k.

Writes docs/eval/accuracy.csv, accuracy.png and README.md (`prune8_host.evalreport`).
Needs the eval extra (torch, scikit-learn, matplotlib): `make eval` installs it.

    python -m prune8_host.evaluate [--out docs/eval] [--epochs 5] [--step-bp 500]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from prune8_host import digits, mlp, ptq, qnn
from prune8_host.model import Layer, load_model
from prune8_host.reference import layer_mask, weight_keep

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "examples" / "digits_mlp.npz"
TEST = ROOT / "examples" / "digits_test.npz"
COMMAND = "make eval (python -m prune8_host.evaluate)"

UNSTRUCTURED = ("magnitude", "gradient", "mincut")
METHODS = UNSTRUCTURED + ("rows", "random", "torch-l1", "torch-ln")
STRUCTURED = ("rows", "torch-ln")
LABELS = {
    "magnitude": "magnitude |w|",
    "gradient": "gradient proxy |w·a|>>4",
    "mincut": "min-cut",
    "rows": "rows (hidden neurons, L1)",
    "random": "random (seeded)",
    "torch-l1": "PyTorch l1_unstructured",
    "torch-ln": "PyTorch ln_structured (rows)",
}
SHORT = {  # for table headers: markdown tables cannot hold "|w|"
    "magnitude": "magnitude", "gradient": "gradient", "mincut": "min-cut", "rows": "rows",
    "random": "random", "torch-l1": "torch l1", "torch-ln": "torch ln rows",
}
SEED = 20261122
FT_EPOCHS = 5
FT_LR = 0.01


@dataclass(frozen=True)
class Result:
    method: str
    finetuned: bool
    sparsity_bp: int       # asked for
    pruned: int            # weights zeroed by the masks, both layers
    total: int
    correct: int
    images: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.images

    @property
    def actual_bp(self) -> int:
        return self.pruned * 10000 // self.total


# -- masks ------------------------------------------------------------------------------

def prune_count(n: int, bp: int) -> int:
    """k of SPEC.md with min_keep = 1: what every method prunes, per layer or per unit."""
    return min(n * bp // 10000, n - 1)


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
        else:
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


# -- fine-tuning ---------------------------------------------------------------------------

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
    for name in keep:  # a pruned weight is exactly 0.0 in float, so 0 in int8
        assert not np.any(q[name].weights[~keep[name]]), name
    return q


# -- the sweep -------------------------------------------------------------------------------

def sweep(epochs: int = FT_EPOCHS, step_bp: int = 500, methods=METHODS,
          log=print) -> dict:
    t0 = time.perf_counter()
    data = digits.load()
    float_model = digits.train_float(data)
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
    results: list[Result] = []
    for method in methods:
        t_method = time.perf_counter()
        for bp in range(0, 10000, step_bp):
            keep, bias_keep = keep_masks(shipped, method, bp)
            pruned = apply_keep(shipped, keep, bias_keep)
            zeroed = total - sum(int(np.count_nonzero(k)) for k in keep.values())
            correct = int(np.count_nonzero(qnn.predict(pruned, images) == labels))
            results.append(Result(method, False, bp, zeroed, total, correct, labels.size))
            tuned = finetune(pruned, keep, bias_keep, data, epochs, SEED + bp)
            x = digits.quantize_images(tuned, data.x_test)
            correct = int(np.count_nonzero(qnn.predict(tuned, x) == data.y_test))
            results.append(Result(method, True, bp, zeroed, total, correct, labels.size))
        log(f"  {method:<10} {time.perf_counter() - t_method:5.1f} s")
    agree = {f"{ours} / {peer}": [masks_agree(shipped, ours, peer, bp)
                                  for bp in range(0, 10000, step_bp)]
             for ours, peer in (("magnitude", "torch-l1"), ("rows", "torch-ln"))
             if ours in methods and peer in methods}
    return {
        "results": results,
        "agreement": agree,
        "float_accuracy": mlp.accuracy(float_model, data.x_test, data.y_test),
        "int8_accuracy": qnn.accuracy(shipped, images, labels),
        "images": int(labels.size),
        "epochs": epochs,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m prune8_host.evaluate",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "eval",
                    help="directory for accuracy.csv, accuracy.png and README.md")
    ap.add_argument("--epochs", type=int, default=FT_EPOCHS,
                    help=f"fine-tuning epochs (default {FT_EPOCHS})")
    ap.add_argument("--step-bp", type=int, default=500,
                    help="sparsity step in basis points (default 500 = 5%%)")
    args = ap.parse_args(argv)
    from prune8_host import evalreport  # matplotlib: only when writing the report
    print(f"prune8 eval: {len(METHODS)} methods x {10000 // args.step_bp} sparsities, "
          f"one-shot and fine-tuned ({args.epochs} epochs)")
    run = sweep(args.epochs, args.step_bp)
    print(f"float {run['float_accuracy']:.4f}, int8 {run['int8_accuracy']:.4f}; "
          f"sweep {run['seconds']:.1f} s")
    for path in evalreport.write(args.out, run):
        print(f"wrote {path}")
    return 0


__all__ = ["METHODS", "LABELS", "SHORT", "Result", "masks_agree", "prune_count", "torch_l1_keep", "torch_ln_rows_keep",
           "keep_masks", "apply_keep", "finetune", "sweep", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
