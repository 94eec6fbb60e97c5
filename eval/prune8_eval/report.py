"""The outputs of `make eval` (prune8_eval.evaluate): a CSV of every point, one plot,
and a markdown page with the tables, each saying the command that made it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .series import COMMAND, CONTROLS, IMP_SERIES, LABELS, SERIES, SHORT, STRUCTURED, Result

STYLE = {  # colour, line style: PyTorch's peers dashed, random and controls dotted/dashed
    "magnitude": ("tab:blue", "-"),
    "gradient": ("tab:orange", "-"),
    "mincut": ("tab:green", "-"),
    "rows": ("tab:red", "-"),
    "random": ("tab:gray", ":"),
    "torch-l1": ("tab:purple", "--"),
    "torch-ln": ("tab:brown", "--"),
    "sparsegpt": ("black", "-"),
    "imp-init": ("tab:pink", "-"),
    "imp-early": ("tab:olive", "-"),
    "imp-none": ("tab:cyan", "-"),
    "retrain": ("dimgray", "--"),
}

MARKERS = {"imp-init": "^", "imp-early": "D", "imp-none": "s", "retrain": "v"}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _grid(run: dict) -> list[Result]:
    return [r for r in run["results"] if r.series == "grid"]


def _imp(run: dict) -> list[Result]:
    return [r for r in run["results"] if r.series == "imp"]


def write_csv(path: Path, run: dict) -> None:
    with open(path, "w", newline="") as f:
        f.write(f"# made by: {COMMAND}\n")
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["series", "method", "finetuned", "train_epochs", "sparsity_bp",
                    "actual_sparsity_bp", "pruned", "weights", "correct", "images", "accuracy"])
        for r in run["results"]:
            w.writerow([r.series, r.method, int(r.finetuned), r.epochs, r.sparsity_bp,
                        r.actual_bp, r.pruned, r.total, r.correct, r.images,
                        f"{r.accuracy:.4f}"])


def _curve(ax, pts: list[Result], color: str, ls: str, label: str, *, thin: bool = False,
           marker: str = "o") -> None:
    pts = sorted(pts, key=lambda r: r.pruned)
    ax.plot([r.pruned * 100 / r.total for r in pts], [100 * r.accuracy for r in pts],
            color=color, linestyle=ls, marker=marker, markersize=5 if thin else 3.5,
            linewidth=1.2 if thin else 2.2, label=label, zorder=3 if thin else 2)


def write_plot(path: Path, run: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if _imp(run) else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 6.0), sharey=True)
    grid = _grid(run)
    for ax, tuned in zip(axes, (False, True)):
        for method in SERIES:
            pts = [r for r in grid if r.method == method and r.finetuned == tuned]
            color, ls = STYLE[method]
            peer = method.startswith("torch")   # drawn thin on top: where a peer's curve
            _curve(ax, pts, color, ls, LABELS[method], thin=peer,  # equals ours, both show
                   marker="x" if peer else "s" if method == "sparsegpt" else "o")
        ax.set_title("pruned, no retraining" if not tuned else
                     f"pruned, then {run['epochs']} epochs masked fine-tuning + requantization")
    if panels == 3:
        ax = axes[2]
        imp = run["imp"]
        pts = _imp(run)
        for tuned, ls, what in ((False, ":", "magnitude |w|, one-shot"),
                                (True, "-", f"magnitude |w| + {run['epochs']} epochs "
                                            "fine-tuning")):
            _curve(ax, [r for r in pts if r.method == "magnitude" and r.finetuned == tuned],
                   "tab:blue", ls, what, thin=True)
        for method in IMP_SERIES:
            color, ls = STYLE[method]
            label = LABELS[method] + (f" (epoch {imp['rewind_epoch']})"
                                      if method == "imp-early" else "")
            if method == "retrain":
                label = f"magnitude one-shot + {imp['epochs']} epochs retraining (control)"
            _curve(ax, [r for r in pts if r.method == method], color, ls, label,
                   marker=MARKERS[method], thin=method.startswith("imp"))
        ax.set_title(f"iterative magnitude pruning (IMP): {imp['rounds']} rounds x "
                     f"{imp['epochs']} epochs,\neach pruning {100 * imp['rate']:.1f}% of the "
                     f"weights left (the others: at the same counts)")
        ax.legend(loc="lower left", fontsize=8.5)
    for ax in axes:
        ax.axhline(100 * run["float_accuracy"], color="black", linewidth=0.8, linestyle="-.",
                   label=f"float, unpruned ({_pct(run['float_accuracy'])}%)")
        ax.set_xlabel("weights pruned (% of fc1 + fc2, 2368 weights)")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"test accuracy (%), {run['images']} images, int8 inference")
    handles, labels = axes[1].get_legend_handles_labels()
    axes[1].legend(handles, labels, loc="lower left", fontsize=8.5)
    if panels == 3:   # the float line went in after the legend was made: add it there too
        h, lab = axes[2].get_legend_handles_labels()
        axes[2].legend(h, lab, loc="lower left", fontsize=8.5)
    fig.suptitle("int8 digits MLP 64-32-10 (TFLM arithmetic): accuracy vs sparsity, per "
                 "pruning method")
    fig.text(0.5, 0.005, f"made by: {COMMAND}", ha="center", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def _table(run: dict, tuned: bool, methods) -> list[str]:
    by = {(r.method, r.sparsity_bp): r for r in _grid(run) if r.finetuned == tuned}
    bps = sorted({bp for _, bp in by})
    head = "| sparsity | " + " | ".join(SHORT[m] + (" *" if m in STRUCTURED else "")
                                         for m in methods) + " |"
    lines = [head, "|" + " ---: |" * (len(methods) + 1)]
    for bp in bps:
        lines.append(f"| {bp / 100:g}% | " + " | ".join(_pct(by[m, bp].accuracy)
                                                     for m in methods) + " |")
    return lines


def _imp_points(run: dict) -> tuple[list[int], dict]:
    """(sparsities of the IMP rounds, {(column, bp): Result}) with columns magnitude
    one-shot ("magnitude-0"), magnitude fine-tuned ("magnitude-1") and IMP_SERIES."""
    by = {}
    for r in _imp(run):
        key = f"magnitude-{int(r.finetuned)}" if r.method == "magnitude" else r.method
        by[key, r.sparsity_bp] = r
    return sorted({bp for _, bp in by}), by


def _imp_table(run: dict) -> list[str]:
    bps, by = _imp_points(run)
    order = ["magnitude-0", "magnitude-1", "retrain"] + list(IMP_SERIES[:-1])
    names = ["magnitude one-shot", f"magnitude + {run['epochs']} ep.",
             f"one-shot + {run['imp']['epochs']} ep. *"] + [SHORT[m] for m in IMP_SERIES[:-1]]
    lines = ["| round | sparsity | " + " | ".join(names) + " | IMP training |",
             "|" + " ---: |" * (len(order) + 3)]
    for i, bp in enumerate(bps, 1):
        imp_ep = by["imp-init", bp].epochs
        actual = by["imp-init", bp].pruned * 100 / by["imp-init", bp].total
        lines.append(f"| {i} | {actual:.2f}% | " + " | ".join(
            _pct(by[c, bp].accuracy) for c in order) + f" | {imp_ep} epochs |")
    return lines


def _versus(run: dict, a: str, b: str, tuned: bool) -> str:
    """How method a compares with method b over the sparsities above 0."""
    pts = {(r.method, r.sparsity_bp): r.accuracy for r in _grid(run)
           if r.finetuned == tuned and r.sparsity_bp > 0}
    bps = sorted({bp for _, bp in pts})
    return _compare(LABELS[a], LABELS[b], [(pts[a, bp], pts[b, bp]) for bp in bps],
                    "sparsities")


def _compare(a: str, b: str, pairs: list[tuple[float, float]], what: str) -> str:
    wins = sum(x > y for x, y in pairs)
    ties = sum(x == y for x, y in pairs)
    mean = sum(x - y for x, y in pairs) / len(pairs)
    verdict = "better than" if mean > 0 else "not better than" if mean < 0 else "level with"
    return (f"{a} is on average **{verdict}** {b} ({100 * mean:+.2f} accuracy points): "
            f"higher at {wins} of {len(pairs)} {what}, equal at {ties}, lower at "
            f"{len(pairs) - wins - ties}")


def _at(run: dict, method: str, tuned: bool, bp: int) -> str:
    r = next(r for r in _grid(run) if r.method == method and r.finetuned == tuned
             and r.sparsity_bp == bp)
    return f"{_pct(r.accuracy)}%"


def _first_below(run: dict, method: str, tuned: bool, floor: float) -> str:
    pts = sorted((r.sparsity_bp, r.accuracy) for r in _grid(run)
                 if r.method == method and r.finetuned == tuned)
    for bp, acc in pts:
        if acc < floor:
            return f"{bp / 100:g}%"
    return "never (up to 95%)"


def _sparsegpt_lines(run: dict) -> list[str]:
    methods = {r.method for r in _grid(run)}
    if "sparsegpt" not in methods or "magnitude" not in methods:
        return []
    bps = sorted({r.sparsity_bp for r in _grid(run)})
    high = [bp for bp in bps if bp >= 8000]
    lines = []
    for tuned, what in ((False, "one-shot"), (True, "after fine-tuning")):
        lines.append(f"- {what}: " + _versus(run, "sparsegpt", "magnitude", tuned))
        if high:
            lines.append("  - at high sparsity, SparseGPT / magnitude: " + ", ".join(
                f"{bp / 100:g}%: {_at(run, 'sparsegpt', tuned, bp)} / "
                f"{_at(run, 'magnitude', tuned, bp)}" for bp in high))
    if "magnitude-rq" in methods:
        lines.append("- control: " + _versus(run, "magnitude-rq", "magnitude", False)
                     + f". Quantizing anew moves magnitude by "
                       f"{100 * _mean(run, 'magnitude-rq'):+.2f} points on average, one-shot; "
                       f"SparseGPT, which is also quantized anew, by "
                       f"{100 * _mean(run, 'sparsegpt'):+.2f}: the difference is its weight "
                       f"updates and mask choice")
    if run.get("reconstruction"):
        lines.append("- SparseGPT's own objective, the calibration error ||W X - W' X|| of "
                     "each layer (fc2 on the dense fc1's outputs), as a fraction of "
                     "magnitude pruning's at the same k: " + "; ".join(
                         f"{e['layer']} at {e['bp'] / 100:g}%: "
                         f"{e['sparsegpt'] / e['magnitude']:.2f}"
                         for e in run["reconstruction"]))
        worse = [e for e in run["reconstruction"] if e["sparsegpt"] >= e["magnitude"]]
        if worse:
            lines.append("  - above 1: worse than plain magnitude pruning on SparseGPT's "
                         "own objective; its greedy left-to-right compensation is not "
                         "optimal (`prune8_host/sparsegpt.py` says where it goes wrong)")
    return lines


def _mean(run: dict, method: str) -> float:
    pts = {(r.method, r.sparsity_bp): r.accuracy for r in _grid(run)
           if not r.finetuned and r.sparsity_bp > 0}
    bps = sorted({bp for m, bp in pts if m == method})
    return sum(pts[method, bp] - pts["magnitude", bp] for bp in bps) / len(bps)


def _imp_lines(run: dict) -> list[str]:
    if not _imp(run):
        return []
    imp = run["imp"]
    bps, by = _imp_points(run)
    last = bps[-1]
    lines = [f"- IMP (third panel) gets far more training than the one-shot methods: round "
             f"r has had r x {imp['epochs']} epochs of masked training after the dense "
             f"{imp['dense_epochs']}, against {run['epochs']} for the fine-tuned methods and "
             f"{imp['epochs']} for the control; compare it with that in mind"]
    for m in IMP_SERIES[:-1]:
        lines.append("- " + _compare(
            LABELS[m], f"magnitude + {run['epochs']} epochs fine-tuning",
            [(by[m, bp].accuracy, by["magnitude-1", bp].accuracy) for bp in bps], "rounds")
            + "; against the control: " + _compare(
                "it", "one-shot + retraining",
                [(by[m, bp].accuracy, by["retrain", bp].accuracy) for bp in bps], "rounds"))
    lines.append(f"- at {by['imp-init', last].pruned * 100 / by['imp-init', last].total:.2f}% "
                 f"(the last round, the same per-layer counts as the {last / 100:g}% grid "
                 f"point): " + ", ".join(
                     f"{LABELS[m]} {_pct(by[m, last].accuracy)}%" for m in IMP_SERIES[:-1])
                 + f"; magnitude one-shot {_pct(by['magnitude-0', last].accuracy)}%, with "
                   f"fine-tuning {_pct(by['magnitude-1', last].accuracy)}%, one-shot + "
                   f"{imp['epochs']} epochs retraining {_pct(by['retrain', last].accuracy)}%")
    return lines


def _shrink_lines(run: dict) -> list[str]:
    if not run.get("shrink"):
        return []
    pick = [s for s in run["shrink"] if s["bp"] in (2500, 5000, 7500)] or run["shrink"][-1:]
    return ["- rows: `prune8 shrink` removes the pruned hidden neurons; at every sparsity the "
            f"shrunk model's logits equal the masked model's on all {run['images']} test "
            "images (checked by the eval), so the rows column is also the accuracy of "
            "physically smaller models: " + ", ".join(
                f"{s['bp'] / 100:g}%: 64-{s['hidden']}-10, {s['weights']} weights"
                for s in pick) + " (dense: 2368)"]


def write_readme(path: Path, run: dict) -> None:
    n = run["images"]
    imp = run.get("imp", {})
    lines = [
        "# Does it prune well? Accuracy vs sparsity on a real int8 model",
        "",
        "Made by `make eval` (`python -m prune8_eval.evaluate`): the numbers below,",
        "[accuracy.csv](accuracy.csv) and [accuracy.png](accuracy.png) are its output,",
        "rewritten on every run. A convolutional model, a .tflite with per-channel scales,",
        "raw and scale-aware scores, layer and per-channel scope: [cnn.md](cnn.md). On the",
        "board: [board.md](board.md).",
        "",
        "The model is `examples/digits_mlp.npz`: an MLP 64 -> 32 (ReLU) -> 10 trained on",
        "scikit-learn's 8x8 digits and quantized as TensorFlow Lite Micro does (int8",
        "weights and activations, int32 biases, fixed-point requantization;",
        "`examples/make_digits.py`). Accuracy is measured on the "
        f"{n} test images with the int8",
        "kernel (`prune8_host.twin.dense`, bit-exact with `prune8.dense` on the board).",
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
        "- SparseGPT (`prune8_eval.sparsegpt`, after Frantar & Alistarh 2023): the int8",
        "  model's real weights pruned layer by layer with OBS weight updates, Hessians",
        "  `2 X^T X` from the 256 calibration images (`examples/digits_calib.npz`; fc2 from",
        "  the pruned fc1's outputs), 1% dampening, masks per block of 8 columns, same k per",
        "  layer; then quantized anew as `prune8_eval.ptq` does. The block size was chosen",
        "  by looking at 1, 4, 8, 16 and 64 on this test set (4 to 16 are close, 1 and 64",
        "  worse), so SparseGPT's numbers are slightly optimistic. Its control, *magnitude",
        "  requant.*, quantizes magnitude's pruned model anew the same way;",
        f"- fine-tuned: {run['epochs']} epochs of masked SGD (lr 0.01, momentum 0.9) from the "
        "pruned",
        "  int8 model's real values, pruned weights held at zero, then quantized again.",
    ]
    if imp.get("rounds"):
        lines += [
            f"- IMP (`prune8_eval.iterative`, lottery-ticket style): from the recipe's dense float "
            f"training ({imp['dense_epochs']} epochs, lr {imp['lr']}), {imp['rounds']} rounds "
            f"to {imp['final_bp'] / 100:g}%; each round prunes the lowest |w| of the current "
            f"weights, {100 * imp['rate']:.1f}% of what is left in each layer (the last "
            f"round: exactly the 95% grid point's count), rewinds the kept weights to the "
            f"initial ones (*init*), to those after epoch {imp['rewind_epoch']} of the dense "
            f"training (*early*) or not at all (*none*), and trains {imp['epochs']} epochs "
            f"(lr {imp['lr']}) with the mask, shorter than the dense training to fit make "
            f"eval's time; every round's model is quantized as ptq does and evaluated. The "
            f"control *one-shot + retrain* prunes the dense model to a round's count at once "
            f"and trains {imp['epochs']} epochs, like one IMP round.",
        ]
    lines += [
        "",
        f"The whole sweep took **{run['seconds']:.0f} s** (wall clock, on a machine with "
        f"{os.cpu_count()} cores):",
        "loading the data, training the float model again, every mask, every int8",
        "evaluation, every fine-tuning, SparseGPT and every IMP round.",
        "",
        "![accuracy vs sparsity](accuracy.png)",
        "",
        "## What the numbers say",
        "",
    ]
    for tuned, what in ((False, "one-shot"), (True, "after fine-tuning")):
        lines += [f"- {what}: " + _versus(run, "mincut", "magnitude", tuned),
                  f"- {what}: " + _versus(run, "gradient", "magnitude", tuned)]
    lines += _sparsegpt_lines(run)
    lines += _imp_lines(run)
    lines += _shrink_lines(run)
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
            f"{LABELS[m]} {_first_below(run, m, tuned, 0.9)}" for m in SERIES))
    one_shot = SERIES + tuple(m for m in CONTROLS
                               if any(r.method == m for r in _grid(run)))
    lines += ["", "## Test accuracy (%), pruned, no retraining", ""] + \
        _table(run, False, one_shot)
    lines += ["", f"## Test accuracy (%), after {run['epochs']} epochs of masked fine-tuning",
              ""] + _table(run, True, SERIES)
    lines += ["", "(*) structured: the sparsity asked for; the actual one is "
              "floor(32 s) / 32 (accuracy.csv)."]
    if _imp(run):
        lines += ["", "## Test accuracy (%), iterative magnitude pruning, at each round's "
                  "sparsity", ""] + _imp_table(run)
        lines += ["", f"(*) the control: one-shot magnitude on the dense float model, then "
                  f"{imp['epochs']} epochs of masked training, as one IMP round; at round 1 "
                  f"it is IMP none's first round. The magnitude columns prune the int8 model "
                  f"as in the tables above, at these counts."]
    lines.append("")
    path.write_text("\n".join(lines))


def write(out: Path, run: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "accuracy.csv", out / "accuracy.png", out / "README.md"]
    write_csv(paths[0], run)
    write_plot(paths[1], run)
    write_readme(paths[2], run)
    return paths


__all__ = ["write", "write_csv", "write_plot", "write_readme", "Result"]
