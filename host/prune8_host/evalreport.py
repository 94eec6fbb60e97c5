"""The outputs of `make eval` (prune8_host.evaluate): a CSV of every point, one plot,
and a markdown page with the tables, each saying the command that made it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from prune8_host.evaluate import COMMAND, LABELS, METHODS, SHORT, STRUCTURED, Result

STYLE = {  # colour, line style: PyTorch's peers dashed, random dotted
    "magnitude": ("tab:blue", "-"),
    "gradient": ("tab:orange", "-"),
    "mincut": ("tab:green", "-"),
    "rows": ("tab:red", "-"),
    "random": ("tab:gray", ":"),
    "torch-l1": ("tab:purple", "--"),
    "torch-ln": ("tab:brown", "--"),
}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def write_csv(path: Path, run: dict) -> None:
    with open(path, "w", newline="") as f:
        f.write(f"# made by: {COMMAND}\n")
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["method", "finetuned", "sparsity_bp", "actual_sparsity_bp", "pruned",
                    "weights", "correct", "images", "accuracy"])
        for r in run["results"]:
            w.writerow([r.method, int(r.finetuned), r.sparsity_bp, r.actual_bp, r.pruned,
                        r.total, r.correct, r.images, f"{r.accuracy:.4f}"])


def write_plot(path: Path, run: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), sharey=True)
    for ax, tuned in zip(axes, (False, True)):
        for method in METHODS:
            pts = [r for r in run["results"] if r.method == method and r.finetuned == tuned]
            color, ls = STYLE[method]
            peer = method.startswith("torch")   # drawn thin on top: where a peer's curve
            ax.plot([r.pruned * 100 / r.total for r in pts],  # equals ours, both show
                    [100 * r.accuracy for r in pts], color=color, linestyle=ls,
                    marker="x" if peer else "o", markersize=5 if peer else 3.5,
                    linewidth=1.2 if peer else 2.2, label=LABELS[method], zorder=3 if peer else 2)
        ax.axhline(100 * run["float_accuracy"], color="black", linewidth=0.8, linestyle="-.",
                   label=f"float, unpruned ({_pct(run['float_accuracy'])}%)")
        ax.set_title("pruned, no retraining" if not tuned else
                     f"pruned, then {run['epochs']} epochs masked fine-tuning + requantization")
        ax.set_xlabel("weights pruned (% of fc1 + fc2, 2368 weights)")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"test accuracy (%), {run['images']} images, int8 inference")
    axes[1].legend(loc="lower left", fontsize=8.5)
    fig.suptitle("int8 digits MLP 64-32-10 (TFLM arithmetic): accuracy vs sparsity, per scorer")
    fig.text(0.5, 0.005, f"made by: {COMMAND}", ha="center", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _table(run: dict, tuned: bool) -> list[str]:
    by = {(r.method, r.sparsity_bp): r for r in run["results"] if r.finetuned == tuned}
    bps = sorted({bp for _, bp in by})
    head = "| sparsity | " + " | ".join(SHORT[m] + (" *" if m in STRUCTURED else "")
                                         for m in METHODS) + " |"
    lines = [head, "|" + " ---: |" * (len(METHODS) + 1)]
    for bp in bps:
        lines.append(f"| {bp / 100:g}% | " + " | ".join(_pct(by[m, bp].accuracy)
                                                     for m in METHODS) + " |")
    return lines


def _versus(run: dict, a: str, b: str, tuned: bool) -> str:
    """How method a compares with method b over the sparsities above 0."""
    pts = {(r.method, r.sparsity_bp): r.accuracy for r in run["results"]
           if r.finetuned == tuned and r.sparsity_bp > 0}
    bps = sorted({bp for _, bp in pts})
    wins = sum(pts[a, bp] > pts[b, bp] for bp in bps)
    ties = sum(pts[a, bp] == pts[b, bp] for bp in bps)
    mean = sum(pts[a, bp] - pts[b, bp] for bp in bps) / len(bps)
    verdict = "better than" if mean > 0 else "not better than" if mean < 0 else "level with"
    return (f"{LABELS[a]} is on average **{verdict}** {LABELS[b]} ({100 * mean:+.2f} "
            f"accuracy points): higher at {wins} of {len(bps)} sparsities, equal at {ties}, "
            f"lower at {len(bps) - wins - ties}")


def _first_below(run: dict, method: str, tuned: bool, floor: float) -> str:
    pts = sorted((r.sparsity_bp, r.accuracy) for r in run["results"]
                 if r.method == method and r.finetuned == tuned)
    for bp, acc in pts:
        if acc < floor:
            return f"{bp / 100:g}%"
    return "never (up to 95%)"


def write_readme(path: Path, run: dict) -> None:
    n = run["images"]
    lines = [
        "# Does it prune well? Accuracy vs sparsity on a real int8 model",
        "",
        "Made by `make eval` (`python -m prune8_host.evaluate`): the numbers below,",
        "[accuracy.csv](accuracy.csv) and [accuracy.png](accuracy.png) are its output,",
        "rewritten on every run.",
        "",
        "The model is `examples/digits_mlp.npz`: an MLP 64 -> 32 (ReLU) -> 10 trained on",
        "scikit-learn's 8x8 digits and quantized as TensorFlow Lite Micro does (int8",
        "weights and activations, int32 biases, fixed-point requantization;",
        "`examples/make_digits.py`). Accuracy is measured on the "
        f"{n} test images with the int8",
        "kernel (`prune8_host.qnn`, bit-exact with `prune8.dense` on the board).",
        "",
        f"- float model, unpruned: **{_pct(run['float_accuracy'])}%**; int8 model, unpruned: "
        f"**{_pct(run['int8_accuracy'])}%**",
        "- each layer is pruned at the same sparsity with the twin's masks (tie = exact,",
        "  min_keep = 1); structured methods (*) remove k = floor(32 s) hidden neurons: fc1's",
        "  rows and biases and fc2's matching columns, so their actual sparsity is k / 32",
        "  (the plot's x axis and the CSV use the actual count of pruned weights);",
        "- gradient proxy: activations = the calibration statistic `fc1.act` / `fc2.act`",
        "  (docs/spec-decisions.md); random: seeded masks of the same size;",
        "- PyTorch peers: `torch.nn.utils.prune.l1_unstructured` / `ln_structured(n=1,",
        "  dim=0)` on the same int8 weights as float tensors, same k;",
        f"- fine-tuned: {run['epochs']} epochs of masked SGD (lr 0.01, momentum 0.9) from the "
        "pruned",
        "  int8 model's real values, pruned weights held at zero, then quantized again.",
        "",
        f"The whole sweep took **{run['seconds']:.0f} s** (wall clock, on a machine with "
        f"{os.cpu_count()} cores):",
        "loading the data, training the float model again, every mask, every int8",
        "evaluation and every fine-tuning.",
        "",
        "![accuracy vs sparsity](accuracy.png)",
        "",
        "## What the numbers say",
        "",
    ]
    for tuned, what in ((False, "one-shot"), (True, "after fine-tuning")):
        lines += [f"- {what}: " + _versus(run, "mincut", "magnitude", tuned),
                  f"- {what}: " + _versus(run, "gradient", "magnitude", tuned)]
    for pair, points in run.get("agreement", {}).items():
        same = sum(identical for identical, _ in points)
        ties = all(t for _, t in points)
        if same == len(points):
            lines.append(f"- masks {pair}: identical at all {same} sparsities")
        else:
            lines.append(f"- masks {pair}: identical at {same} of {len(points)} sparsities; "
                         + ("elsewhere they prune as many entries and differ only in which "
                            "of those tied at the threshold go" if ties else
                            "**elsewhere they differ beyond ties**"))
    for tuned, what in ((False, "one-shot"), (True, "fine-tuned")):
        lines.append(f"- {what}, first sparsity below 90% accuracy: " + ", ".join(
            f"{LABELS[m]} {_first_below(run, m, tuned, 0.9)}" for m in METHODS))
    lines += ["", "## Test accuracy (%), pruned, no retraining", ""] + _table(run, False)
    lines += ["", f"## Test accuracy (%), after {run['epochs']} epochs of masked fine-tuning",
              ""] + _table(run, True)
    lines += ["", "(*) structured: the sparsity asked for; the actual one is "
              "floor(32 s) / 32 (accuracy.csv).", ""]
    path.write_text("\n".join(lines))


def write(out: Path, run: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "accuracy.csv", out / "accuracy.png", out / "README.md"]
    write_csv(paths[0], run)
    write_plot(paths[1], run)
    write_readme(paths[2], run)
    return paths


__all__ = ["write", "write_csv", "write_plot", "write_readme", "Result"]
