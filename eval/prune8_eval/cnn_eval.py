"""make eval, the convolutional model: the digits CNN (study.cnn) as a .tflite, pruned
with every scorer that applies, raw and scale-aware, layer and per-channel scope, at
0%..95%, one-shot and after a short masked fine-tuning; accuracy by TFLM's interpreter.

Every layer (CONV_2D, DEPTHWISE_CONV_2D, CONV_2D 1x1, FULLY_CONNECTED) is pruned at the
same sparsity, by the twin's masks (twin.reference.layer_mask) on the .tflite's own 2-D
views. One-shot: the .tflite with the pruned weights written into it
(files.tflite.pruned_bytes). Fine-tuned: the float CNN with the masks, trained
FT_EPOCHS more epochs with pruned weights held at zero, quantized anew as the converter
would. The gradient proxy's activations are the calibration statistic of each layer's
int8 input (one per weight for the depthwise layer, whose rows see different inputs).
Wanda is absent: it takes one input norm per column, and a depthwise layer's columns
differ per row.

Writes docs/eval/cnn.csv, cnn.png and cnn.md.

    python -m prune8_eval.cnn_eval [--out docs/eval] [--step-bp 500] [--epochs 3]
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from prune8_host.files import tflite
from prune8_host.twin import tflm
from prune8_host.twin.reference import layer_mask, weight_keep

from . import cnn, digits, ptq

ROOT = Path(__file__).resolve().parents[2]  # the checkout: eval/ is not installed
COMMAND = "make eval (python -m prune8_eval.cnn_eval)"
FT_EPOCHS = 3
FT_LR = 0.02
PER_WEIGHT = ("magnitude", "scaled", "l2", "gradient", "mincut", "random")
STRUCTURED = ("rows", "cols")
SERIES = [(m, s) for m in PER_WEIGHT for s in ("layer", "channel")] + \
    [(m, "layer") for m in STRUCTURED]
LABELS = {"magnitude": "magnitude |w| (raw int8)", "scaled": "scale-aware |w|·scale",
          "l2": "l2 w·w", "gradient": "gradient proxy", "mincut": "min-cut",
          "random": "random (seeded)", "rows": "rows (output channels)",
          "cols": "cols (inputs)"}
TENSORS = {"conv1/weights": "conv1", "dw/weights": "dw", "pw/weights": "pw",
           "fc/weights": "fc"}


def _stat(values: np.ndarray, zp: int) -> np.ndarray:
    """The gradient proxy's activation statistic (docs/spec.md §8.7) over the first
    axis: a = (127 * sum|x - zp| + max // 2) // max."""
    sums = np.abs(values.astype(np.int64) - zp).sum(axis=0)
    top = int(sums.max())
    return ((sums * 127 + top // 2) // top).astype(np.int8) if top else \
        np.zeros(sums.shape, np.int8)


def gradient_activations(m: cnn.CNN, q: dict, calib: np.ndarray) -> dict[str, np.ndarray]:
    """Per layer, the int8 activations the gradient proxy multiplies |w| by, in the shape
    of the layer's 2-D view's columns (or of the view itself for the depthwise layer)."""
    c = cnn.activations(m, calib)

    def int8(x, key):
        scale, zp = q[key]
        return ptq.quantize_activations(x, scale, int(zp)), int(zp)

    x0, z0 = int8(c["input"].reshape(-1, 8, 8, 1), "input")
    x1, z1 = int8(c["conv1"], "conv1")
    x2, z2 = int8(c["dw"], "dw")
    x3, z3 = int8(c["pw"], "pw")
    p0 = cnn._patches(x0)                  # (n,6,6,3,3,1): conv1's column (i, j, c)
    p1 = cnn._patches(x1)                  # (n,4,4,3,3,8): dw weight (c, i*3+j)
    return {
        "conv1/weights": _stat(p0.reshape(-1, 9), z0),
        "dw/weights": _stat(p1.reshape(-1, 9, 8), z1).T.copy(),
        "pw/weights": _stat(x2.reshape(-1, 8), z2),
        "fc/weights": _stat(x3.reshape(len(calib), -1), z3),
    }


def masks_for(tm, method: str, scope: str, bp: int, acts: dict) -> dict:
    out = {}
    for name, layer in tm.layers.items():
        if method == "gradient":
            layer = replace(layer, activations=acts[name])
        out[name] = layer_mask(layer, method, sparsity_bp=bp, scope=scope, seed=bp)
    return out


def _pruned(tm, masks) -> dict[str, np.ndarray]:
    return {n: np.where(weight_keep(m), tm.layers[n].weights, 0).astype(np.int8)
            for n, m in masks.items()}


def finetune(m: cnn.CNN, tm, masks, data: digits.Digits, epochs: int) -> bytes:
    """The float CNN with the masks (mapped to its tensors), trained `epochs` more with
    pruned weights held at 0, quantized anew: its .tflite bytes."""
    keep = {}
    for name, mask in masks.items():
        p = tm.placements[name]
        keep[TENSORS[name]] = p.unview(weight_keep(mask)).reshape(p.shape).astype(np.float64)
    start = replace(m, **{k: m.weights()[k] * keep[k] for k in keep})
    tuned = cnn.train(start, data.x_train, data.y_train, epochs=epochs, lr=FT_LR,
                      masks=keep)
    data_bytes, _ = cnn.quantize(tuned, data.x_calib)
    return data_bytes


def sweep(step_bp: int = 500, epochs: int = FT_EPOCHS, series=SERIES, log=print) -> dict:
    t0 = time.perf_counter()
    data = digits.load()
    m = cnn.train(cnn.init(), data.x_train, data.y_train)
    model_bytes, q = cnn.quantize(m, data.x_calib)
    tm = tflite.parse(model_bytes, "the digits CNN")
    x_test = cnn.images(data.x_test, q)
    acts = gradient_activations(m, q, data.x_calib)
    total = sum(layer.n for layer in tm.layers.values())
    base = tflm.accuracy(model_bytes, x_test, data.y_test)[0]
    log(f"CNN: float {cnn.accuracy(m, data.x_test, data.y_test):.4f}, int8 (TFLM) "
        f"{base / len(data.y_test):.4f}")
    rows = []
    for method, scope in series:
        for bp in range(0, 10000, step_bp):
            masks = masks_for(tm, method, scope, bp, acts)
            pruned = sum(int((~weight_keep(mk)).sum()) for mk in masks.values())
            one = tflm.accuracy(tflite.pruned_bytes(tm, _pruned(tm, masks)), x_test,
                                data.y_test)[0]
            tuned_bytes = finetune(m, tm, masks, data, epochs)
            tuned = tflm.accuracy(tuned_bytes, x_test, data.y_test)[0]
            for ft, correct in ((False, one), (True, tuned)):
                rows.append({"method": method, "scope": scope, "finetuned": ft,
                             "sparsity_bp": bp, "pruned": pruned, "weights": total,
                             "correct": correct, "images": len(data.y_test)})
        log(f"  {method} ({scope}) done")
    return {"rows": rows, "int8_correct": base, "images": len(data.y_test), "weights": total,
            "epochs": epochs, "seconds": time.perf_counter() - t0,
            "layers": {n: [p.op, list(tm.layers[n].weights.shape)]
                       for n, p in tm.placements.items()}}


# -- the report ----------------------------------------------------------------------------

def _acc(r) -> float:
    return 100.0 * r["correct"] / r["images"]


def _by(run):
    return {(r["method"], r["scope"], r["finetuned"], r["sparsity_bp"]): r for r in run["rows"]}


def verdict(run) -> list[str]:
    """What wins, said plainly, from the numbers."""
    by = _by(run)
    bps = sorted({r["sparsity_bp"] for r in run["rows"]})
    high = [bp for bp in bps if bp >= 5000]
    lines, plain = [], []
    series = sorted({(r["method"], r["scope"]) for r in run["rows"]})
    for ft in (False, True):
        kind = (f"after {run['epochs']} epoch{'s' if run['epochs'] != 1 else ''} of "
                f"fine-tuning") if ft else "one-shot"
        best, winners = [], {}
        for bp in high:
            top = max((_acc(by[m, s, ft, bp]), m, s) for m, s in series)
            winners[top[1:]] = winners.get(top[1:], 0) + 1
            best.append(f"{bp // 100}% {LABELS[top[1]]}, {top[2]} ({top[0]:.1f}%)")
        lines.append(f"- Best {kind} at each sparsity from 50%: " + "; ".join(best) + ".")
        (m, s), count = max(winners.items(), key=lambda kv: kv[1])
        plain.append(f"{kind}, {LABELS[m]} at {s} scope is best at {count} of {len(high)} "
                     f"sparsities from 50%")
    lines.insert(0, "- Plainly: " + "; ".join(plain) + ".")
    have = {(r["method"], r["scope"]) for r in run["rows"]}
    for scope in ("layer", "channel"):
        if not {("scaled", scope), ("magnitude", scope)} <= have:
            continue
        diffs = [_acc(by["scaled", scope, False, bp]) - _acc(by["magnitude", scope, False, bp])
                 for bp in high]
        wins = sum(d > 0 for d in diffs)
        lines.append(f"- Scale-aware against raw int8 magnitude, {scope} scope, one-shot, "
                     f"50%..95%: better at {wins}, equal at {sum(d == 0 for d in diffs)}, "
                     f"worse at {sum(d < 0 for d in diffs)} of {len(high)} sparsities "
                     f"(mean {np.mean(diffs):+.1f} points).")
    for method in ("scaled", "magnitude"):
        if not {(method, "layer"), (method, "channel")} <= have:
            continue
        diffs = [_acc(by[method, "channel", False, bp]) - _acc(by[method, "layer", False, bp])
                 for bp in high]
        lines.append(f"- Per-channel against layer scope for {method}, one-shot, 50%..95%: "
                     f"mean {np.mean(diffs):+.1f} points (better at "
                     f"{sum(d > 0 for d in diffs)} of {len(high)}).")
    return lines


def write(out: Path, run: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "cnn.csv", out / "cnn.png", out / "cnn.md"]
    with open(paths[0], "w", newline="") as f:
        f.write(f"# made by: {COMMAND}\n")
        w = csv.writer(f)
        w.writerow(["method", "scope", "finetuned", "sparsity_bp", "pruned", "weights",
                    "correct", "images", "accuracy"])
        for r in run["rows"]:
            w.writerow([r["method"], r["scope"], int(r["finetuned"]), r["sparsity_bp"],
                        r["pruned"], r["weights"], r["correct"], r["images"],
                        f"{r['correct'] / r['images']:.4f}"])
    _plot(paths[1], run)
    paths[2].write_text(_markdown(run), encoding="utf-8")
    return paths


def _plot(path: Path, run: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = {"magnitude": "tab:blue", "scaled": "tab:red", "l2": "tab:purple",
              "gradient": "tab:orange", "mincut": "tab:green", "random": "tab:gray",
              "rows": "tab:brown", "cols": "tab:olive"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, ft in zip(axes, (False, True)):
        for method, scope in sorted({(r["method"], r["scope"]) for r in run["rows"]}):
            pts = sorted((r["sparsity_bp"], _acc(r)) for r in run["rows"]
                         if (r["method"], r["scope"], r["finetuned"]) == (method, scope, ft))
            ax.plot([p[0] / 100 for p in pts], [p[1] for p in pts], color=colors[method],
                    ls="-" if scope == "layer" else "--", marker=".",
                    label=f"{LABELS[method]}, {scope}")
        ax.set_title("one-shot" if not ft else f"after {run['epochs']} epochs fine-tuning")
        ax.set_xlabel("sparsity of every layer (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy by TFLM (%)")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.suptitle("digits CNN (.tflite, per-channel conv scales): accuracy against sparsity")
    fig.text(0.5, 0.005, f"made by: {COMMAND}", ha="center", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _markdown(run: dict) -> str:
    by = _by(run)
    series = [s for s in SERIES if any((r["method"], r["scope"]) == s for r in run["rows"])]
    bps = [bp for bp in (0, 3000, 5000, 7000, 8000, 9000, 9500)
           if any(r["sparsity_bp"] == bp for r in run["rows"])]
    lines = [
        "# The digits CNN: pruning a per-channel quantized .tflite",
        "",
        f"Made by `{COMMAND}` in {run['seconds']:.0f} s. A CNN for the 8x8 digits, trained in "
        f"NumPy (`prune8_eval.cnn`) and written as an int8 .tflite with per-channel "
        f"scales on its convolutions: "
        + ", ".join(f"{n} ({op}, {r}x{c})" for n, (op, (r, c)) in run["layers"].items())
        + f", {run['weights']} weights. Unpruned, TFLM classifies {run['int8_correct']}/"
        f"{run['images']} test images right.",
        "",
        "Every layer is pruned at the same sparsity by the twin's masks on the .tflite's "
        "own layers; accuracy is TFLM's interpreter on the pruned .tflite (one-shot), or "
        f"on the model fine-tuned {run['epochs']} epochs with the masks and quantized anew. "
        "Layer scope ranks a whole layer; channel scope prunes the same count in every "
        "output channel. Plot: [cnn.png](cnn.png); every point: [cnn.csv](cnn.csv).",
        "",
        "## What wins",
        "",
        *verdict(run),
        "",
    ]
    for ft in (False, True):
        lines += [f"## Test accuracy (%), {'fine-tuned' if ft else 'one-shot'}", "",
                  "| scorer | scope | " + " | ".join(f"{bp // 100}%" for bp in bps) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in bps) + " |"]
        for method, scope in series:
            lines.append(f"| {LABELS[method].replace('|', chr(92) + '|')} | {scope} | " +
                         " | ".join(f"{_acc(by[method, scope, ft, bp]):.1f}" for bp in bps)
                         + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "eval", metavar="DIR")
    ap.add_argument("--step-bp", type=int, default=500, metavar="BP",
                    help="sparsity step in basis points (default 500 = 5%%)")
    ap.add_argument("--epochs", type=int, default=FT_EPOCHS,
                    help=f"fine-tuning epochs per point (default {FT_EPOCHS})")
    args = ap.parse_args(argv)
    run = sweep(args.step_bp, args.epochs)
    for path in write(args.out, run):
        print(f"wrote {path}")
    print("\n".join(verdict(run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
