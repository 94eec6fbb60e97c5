"""The channel study's report (channels_eval): docs/eval/channels.csv, every point;
channels.png, accuracy against the channels removed; channels.md, the tables and what
wins, what it costs and where recovery does not help, said from the numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COMMAND = "make eval (python -m prune8_eval.channels_eval)"
LABELS = {"scaled": "scale-aware L1", "gradient": "gradient proxy", "wanda": "Wanda"}

COLUMNS = ("model", "scorer", "recovery", "finetuned", "sparsity_bp", "channels_removed",
           "channels", "correct", "images", "accuracy", "weight_bytes", "macs", "invoke_us",
           "dense_invoke_us", "seconds", "fixes", "merged", "note")
FROM_BP = 3000            # "what wins" looks from here up: below, every point is near dense


def _acc(r) -> float:
    return 100.0 * r["correct"] / r["images"]


def _measured(m) -> list[dict]:
    return [r for r in m["rows"] if r["correct"] is not None]


def _by(m) -> dict:
    return {(r["scorer"], r["recovery"], r["finetuned"], r["sparsity_bp"]): r
            for r in _measured(m)}


def _series(m) -> list[tuple[str, str, bool]]:
    seen = []
    for r in _measured(m):
        key = (r["scorer"], r["recovery"], r["finetuned"])
        if key not in seen:
            seen.append(key)
    return seen


def _name(scorer: str, recovery: str, ft: bool, epochs: int) -> str:
    return f"{LABELS[scorer]} + " + (f"{_epochs(epochs)} fine-tuning" if ft else
                                     f"recovery {recovery}")


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"


def _bps(m) -> list[int]:
    return sorted({r["sparsity_bp"] for r in m["rows"]})


def _na(m) -> list[str]:
    return sorted({r["scorer"] for r in m["rows"] if r["correct"] is None})


def _partial(m) -> dict[str, str]:
    """{scorer: why it prunes only some groups} (Wanda through a depthwise layer)."""
    return {r["scorer"]: r["note"] for r in _measured(m) if r["note"]}


def _compare(diffs: list[float]) -> str:
    return (f"{np.mean(diffs):+.1f} points on average (better at {sum(d > 0 for d in diffs)}, "
            f"equal at {sum(d == 0 for d in diffs)}, worse at {sum(d < 0 for d in diffs)} of "
            f"{len(diffs)} points)")


def model_verdict(m, epochs: int) -> list[str]:
    """What wins on one model, what it costs, and where recovery does not help."""
    by, bps = _by(m), _bps(m)
    high = [bp for bp in bps if bp >= FROM_BP]
    full = _full(m)
    recs = list(dict.fromkeys(r["recovery"] for r in _measured(m) if not r["finetuned"]))
    title = m["title"]
    lines = []
    # the winner at each sparsity, among the scorers that prune every group
    wins, best = {}, []
    for bp in high:
        cands = [(_acc(by[s, r, ft, bp]), s, r, ft) for s, r, ft in _series(m)
                 if s in full and (s, r, ft, bp) in by]
        if not cands:
            continue
        acc = max(c[0] for c in cands)
        tied = [c[1:] for c in cands if c[0] == acc]
        for t in tied:                      # every series tied at the top wins the point
            wins[t] = wins.get(t, 0) + 1
        best.append(f"{bp // 100}% {_name(*tied[0], epochs)} ({acc:.1f}%"
                    + (f", tied with {len(tied) - 1} more" if len(tied) > 1 else "") + ")")
    if wins:
        (s, r, ft), n = max(wins.items(), key=lambda kv: kv[1])
        lines.append(f"- **{title}: {_name(s, r, ft, epochs)} wins at {n} of {len(best)} "
                     f"sparsities from {FROM_BP // 100}%.** Best at each: " + "; ".join(best)
                     + ".")
    # recovery against none, same scorer and sparsity, where channels were removed
    for rec in [r for r in recs if r != "none"]:
        diffs = []
        for s in full:
            for bp in bps:
                a, b = by.get((s, rec, False, bp)), by.get((s, "none", False, bp))
                if a and b and a["channels_removed"]:
                    diffs.append(_acc(a) - _acc(b))
        if not diffs:
            continue
        secs = [r_["seconds"] for r_ in _measured(m) if r_["recovery"] == rec
                and not r_["finetuned"] and r_["channels_removed"] and r_["scorer"] in full]
        line = (f"- {title}, recovery {rec} against none: {_compare(diffs)}; "
                f"{np.mean(secs):.2f} s a point (recovery and shrink)")
        if rec == "merge":
            merged = sum(r_["merged"] for r_ in _measured(m) if r_["recovery"] == "merge")
            line += (f"; it merged {merged} channels in all: where no producer row is a "
                     f"sound, aligned stand-in for a removed one (a residual ADD or a "
                     f"depthwise layer in the group, or cos < 0.8) it is recovery none"
                     if merged < len(diffs) else f"; it merged {merged} channels")
        lines.append(line + ".")
    none_base = [by.get((s, "none", False, bp)) for s in full for bp in high]
    if "lsq" in recs and all(none_base):
        lows = [f"{b['sparsity_bp'] // 100}% {LABELS[b['scorer']]}" for b in none_base
                if by[b["scorer"], "lsq", False, b["sparsity_bp"]]["correct"] <= b["correct"]]
        lines.append(f"- {title}, where lsq does not help (from {FROM_BP // 100}%): "
                     + (", ".join(lows) if lows else "nowhere") + ".")
    # the fine-tuning control against the best one-shot recovery of the same scorer
    for s in m["tuned"]:
        if s not in full:
            continue
        pairs = [(by[s, "none", True, bp], by.get((s, "lsq", False, bp))) for bp in bps
                 if (s, "none", True, bp) in by and by[s, "none", True, bp]["channels_removed"]]
        pairs = [(a, b) for a, b in pairs if b]
        if not pairs:
            continue
        diffs = [_acc(b) - _acc(a) for a, b in pairs]
        ft_s = np.mean([a["seconds"] for a, _ in pairs])
        lsq_s = np.mean([b["seconds"] for _, b in pairs])
        lines.append(f"- {title}, {LABELS[s]}: one-shot lsq against {_epochs(epochs)} of "
                     f"fine-tuning (then recovery none): {_compare(diffs)}; lsq costs "
                     f"{lsq_s:.1f} s a point and the calibration it shares with the scorers "
                     f"({m['calib_seconds']:.2f} s, once); fine-tuning {ft_s:.1f} s a point "
                     f"and the training set.")
    # the scorers against each other, under the same recovery
    if "scaled" in full:
        for s in [x for x in full if x != "scaled"]:
            for rec in ("none", "lsq"):
                diffs = [_acc(by[s, rec, False, bp]) - _acc(by["scaled", rec, False, bp])
                         for bp in bps if (s, rec, False, bp) in by and
                         ("scaled", rec, False, bp) in by and
                         by["scaled", rec, False, bp]["channels_removed"]]
                if diffs:
                    lines.append(f"- {title}, {LABELS[s]} against scale-aware L1, recovery "
                                 f"{rec}: {_compare(diffs)}.")
    for s, note in _partial(m).items():
        lines.append(f"- {title}, {LABELS[s]}: {note}; its points remove fewer channels "
                     f"(channels.csv's channels_removed), so they are not compared above.")
    for s in _na(m):
        why = next(r["note"] for r in m["rows"] if r["scorer"] == s)
        lines.append(f"- {title}, {LABELS[s]}: {why}; not measured.")
    # what it buys, at 50 %
    half = by.get(("scaled", "none", False, 5000))
    if half:
        d = m["dense"]
        lines.append(f"- {title} at 50%: {half['channels_removed']} of {m['channels']} "
                     f"channels removed, int8 weights {half['weight_bytes']:,} B "
                     f"({half['weight_bytes'] / d['weight_bytes']:.0%} of dense), "
                     f"{half['macs']:,} MACs ({half['macs'] / d['macs']:.0%}), TFLM invoke "
                     f"{half['invoke_us']:.0f} us against the dense model's "
                     f"{half['dense_invoke_us']:.0f} us in the same run "
                     f"({half['dense_invoke_us'] / half['invoke_us']:.2f}x faster).")
    return lines


def _full(m) -> list[str]:
    """The scorers that prune every group of the model (not Wanda through a depthwise)."""
    return [s for s in dict.fromkeys(r["scorer"] for r in _measured(m)) if s not in _partial(m)]


def _gain(m, rec: str) -> tuple[float, float] | None:
    """(mean points over recovery none, mean seconds a point) of a recovery, over the
    points that removed channels; None when it was not measured."""
    by = _by(m)
    pairs = [(by[s, rec, False, bp], by[s, "none", False, bp]) for s in _full(m)
             for bp in _bps(m) if (s, rec, False, bp) in by and (s, "none", False, bp) in by
             and by[s, rec, False, bp]["channels_removed"]]
    if not pairs:
        return None
    return (float(np.mean([_acc(a) - _acc(b) for a, b in pairs])),
            float(np.mean([a["seconds"] for a, _ in pairs])))


def plainly(run) -> str:
    """One sentence per model: the recoveries' gains and costs, side by side."""
    parts, best = [], set()
    for m in run["models"]:
        gains = {rec: _gain(m, rec) for rec in ("lsq", "bias", "merge", "none")}
        measured = {rec: g for rec, g in gains.items() if g and rec != "none"}
        if measured:
            best.add(max(measured, key=lambda rec: measured[rec][0]))
        said = [f"{rec} {g[0]:+.1f} points over none at {g[1]:.2f} s a point"
                for rec, g in gains.items() if g and rec != "none"]
        if not said:
            continue
        merged = sum(r["merged"] for r in _measured(m) if r["recovery"] == "merge")
        dw = sum(1 for _, _, d in m["groups"] if d)
        parts.append(f"on the {m['title']}, " + ", ".join(said)
                     + (f" (none itself: {gains['none'][1]:.2f} s)" if gains["none"] else "")
                     + (f"; merge merged {merged} channels ({dw} of {len(m['groups'])} "
                        f"groups run through a depthwise layer, where it does not apply)"
                        if gains["merge"] else ""))
    if not parts:
        return ""
    return ("- Plainly: " + "; ".join(parts) + "."
            + (f" Recovery {best.pop()} gains the most on every model." if len(best) == 1
               else "") + " Against fine-tuning, the control: below.")


def verdict(run) -> list[str]:
    head = plainly(run)
    return ([head] if head else []) + \
        [line for m in run["models"] for line in model_verdict(m, run["epochs"])]


def write(out: Path, run: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "channels.csv", out / "channels.png", out / "channels.md"]
    with open(paths[0], "w", newline="") as f:
        f.write(f"# made by: {COMMAND}\n")
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for m in run["models"]:
            for r in m["rows"]:
                acc = "" if r["correct"] is None else f"{r['correct'] / r['images']:.4f}"
                w.writerow([("" if r.get(c) is None else int(r[c]) if c == "finetuned"
                             else r[c]) if c != "accuracy" else acc for c in COLUMNS])
    _plot(paths[1], run)
    paths[2].write_text(markdown(run), encoding="utf-8")
    return paths


def _plot(path: Path, run: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = {"none": "tab:gray", "bias": "tab:orange", "lsq": "tab:red",
              "merge": "tab:green"}
    styles = {"scaled": "-", "gradient": "--", "wanda": ":"}
    models = run["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 5), squeeze=False)
    for ax, m in zip(axes[0], models):
        for s, rec, ft in _series(m):
            pts = sorted((r["channels_removed"] / r["channels"] * 100, _acc(r))
                         for r in _measured(m)
                         if (r["scorer"], r["recovery"], r["finetuned"]) == (s, rec, ft))
            # none drawn wide beneath, so that merge, where it is none, still shows both
            ax.plot([p[0] for p in pts], [p[1] for p in pts],
                    color="black" if ft else colors[rec], ls=styles[s],
                    lw=3.5 if rec == "none" and not ft else 1.3,
                    alpha=0.5 if rec == "none" and not ft else 1.0,
                    marker="s" if ft else "x" if rec == "merge" else ".", ms=4,
                    label=_name(s, rec, ft, run["epochs"]))
        ax.set_title(f"{m['title']} ({m['path']})", fontsize=10)
        ax.set_xlabel("channels removed, of the prunable groups' (%)")
        ax.grid(alpha=0.3)
        if _series(m):
            ax.legend(fontsize=6, loc="lower left")
        else:
            ax.text(0.5, 0.5, "nothing measured (n/a)", ha="center", transform=ax.transAxes)
    axes[0][0].set_ylabel("test accuracy by TFLM (%)")
    fig.suptitle("channel pruning: scorer x recovery, one-shot, and fine-tuning as a control")
    fig.text(0.5, 0.005, f"made by: {COMMAND}", ha="center", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _table(m, epochs: int) -> list[str]:
    by, bps = _by(m), _bps(m)
    lines = ["| scorer | recovery | " + " | ".join(f"{bp // 100}%" for bp in bps) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in bps) + " |"]
    for s, rec, ft in _series(m):
        cells = [f"{_acc(by[s, rec, ft, bp]):.1f}" if (s, rec, ft, bp) in by else ""
                 for bp in bps]
        star = " *" if s in _partial(m) else ""
        lines.append(f"| {LABELS[s]}{star} | "
                     + (f"{_epochs(epochs)} fine-tuning, none" if ft else rec) + " | "
                     + " | ".join(cells) + " |")
    for s in _na(m):
        lines.append(f"| {LABELS[s]} | - | " + " | ".join("n/a" for _ in bps) + " |")
    # the cost of each sparsity's model (scale-aware L1, recovery none: the same shapes as
    # every scorer that prunes all groups)
    size = ["", "| sparsity | channels removed | int8 weight bytes | MACs | TFLM invoke (us) "
            "| dense invoke, same run (us) |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for bp in bps:
        r = by.get(("scaled", "none", False, bp))
        if r:
            size.append(f"| {bp // 100}% | {r['channels_removed']} of {r['channels']} | "
                        f"{r['weight_bytes']:,} | {r['macs']:,} | {r['invoke_us']:.1f} | "
                        f"{r['dense_invoke_us']:.1f} |")
    return lines + (size if len(size) > 3 else [])


def markdown(run: dict) -> str:
    epochs = run["epochs"]
    lines = [
        "# Channel pruning: what wins, and what it costs",
        "",
        f"Made by `{COMMAND}` in {run['seconds']:.0f} s (wall clock, on a machine with 2 "
        f"cores, {run['cpu_seconds']:.0f} s of CPU time; load average {run['load']:.1f} at "
        f"its end): every calibration, mask, recovery, shrink, fine-tuning, TFLM accuracy "
        f"and invoke timing below. Plot: [channels.png](channels.png); every point, with "
        f"its recovery's time and what it did per layer: [channels.csv](channels.csv).",
        "",
        "Each model loses the same share of the channels of every prunable channel group "
        "(`prune8 model info` lists them; k = floor(channels x sparsity) per group, so a "
        "small group moves in steps), ranked by the scorer's per-weight scores summed per "
        "channel (`twin.channels`), and is shrunk (`prune8 shrink --structured channels "
        "--recover ...`): after recovery *none* (removed channels' constants folded into "
        "the biases), *bias* (each consumer's mean shift), *lsq* (each consumer refitted "
        "by least squares) or *merge* (data-free, where sound) — docs/recovery.md. The "
        "gradient proxy's activations, Wanda's samples and the bias/lsq fits all come from "
        "TFLM calibration on the first 256 training images (examples/digits_calib.npz; "
        "upsampled 2x2 for the MobileNet). The control: the float model (the .tflite "
        f"dequantized) with the pruned channels held at zero, fine-tuned {_epochs(epochs)} "
        "on the 1437 training images, quantized anew as its own script does, shrunk with "
        "recovery none. Accuracy: TFLM's interpreter on the 360 held-out images. Invoke "
        "times are medians on this host, each point's models interleaved with the dense "
        "one's.",
        "",
        "## What wins",
        "",
        *verdict(run),
        "",
    ]
    for m in run["models"]:
        d = m["dense"]
        groups = ", ".join(f"{n}: {c} channels" + (f" (through {dw})" if dw else "")
                           for n, c, dw in m["groups"])
        lines += [f"## {m['title']}: test accuracy (%)", "",
                  f"`{m['path']}` on `{m['test']}`: dense {d['correct']}/{d['images']}, "
                  f"{d['weight_bytes']:,} int8 weight bytes, {d['macs']:,} MACs. Prunable "
                  f"groups {groups}. Calibration: {m['calib_images']} images, "
                  f"{m['calib_seconds']:.2f} s.", ""]
        lines += _table(m, epochs)
        if _partial(m):
            lines += ["", "(*) " + "; ".join(f"{LABELS[s]}: {n}" for s, n in
                                            _partial(m).items())
                      + " (its own weight bytes, MACs and times: channels.csv)."]
        lines.append("")
    return "\n".join(lines)
