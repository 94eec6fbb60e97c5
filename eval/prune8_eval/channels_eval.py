"""make eval, channel pruning: what wins, and what it costs. The digits CNN
(examples/digits_cnn.tflite) and the MobileNet-style CNN (examples/digits_mobilenet.tflite)
lose 0..75 % of the channels of every prunable channel group, scored by scale-aware L1
("scaled"), the gradient proxy ("gradient") or Wanda ("wanda"), and are shrunk after each
recovery (none, bias, lsq, merge: files.recover); as a control, the float model with the
pruned channels held at zero is fine-tuned a few epochs, quantized anew and shrunk with
recovery none (channels_tune). Accuracy by TFLM's interpreter on the held-out digits,
with each small model's int8 weight bytes, multiply-accumulates and TFLM invoke time.

The scorers' inputs come from TFLM calibration (files.calibration) on the first 256
training images (examples/digits_calib.npz; for the MobileNet, upsampled 2x2), the same
images bias and lsq fit on. Wanda takes one input norm per column, which a depthwise
layer does not have (each of its rows reads its own channel): a group through one is not
scored by Wanda (`prune8 mask --method wanda` refuses it); Wanda prunes only the groups it
can score and the others stay whole, said beside each point (n/a where it scores none).

Writes docs/eval/channels.csv, channels.png and channels.md (channels_report).

    python -m prune8_eval.channels_eval [--out docs/eval] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from prune8_host.files import calibration, footprint
from prune8_host.files.graph import Group, groups_of
from prune8_host.files.recover import RECOVERIES, recover
from prune8_host.files.tflite import TfliteModel, parse
from prune8_host.files.tflite_shrink import shrink
from prune8_host.twin import tflm
from prune8_host.twin.channels import group_masks
from prune8_host.twin.layer import PruneOptions

from . import channels_report, channels_tune, digits
from . import mobilenet as mn

ROOT = Path(__file__).resolve().parents[2]  # the checkout: eval/ is not installed
EXAMPLES = ROOT / "examples"
SPARSITIES = (0, 1000, 2000, 3000, 4000, 5000, 6000, 7500)
SCORERS = ("scaled", "gradient", "wanda")


@dataclass(frozen=True)
class Subject:
    """A model of the study: its file, held-out data, calibration inputs and fine-tuning."""
    key: str
    title: str
    path: Path
    test: Path
    calib: Callable[[np.ndarray], np.ndarray]   # the 8x8 int8 images -> the model's input
    tune: Callable                              # channels_tune.tune_*
    tuned: tuple                                # the scorers fine-tuned as the control


SUBJECTS = {
    "cnn": Subject("cnn", "digits CNN", EXAMPLES / "digits_cnn.tflite",
                   EXAMPLES / "digits_test.npz", lambda x: x, channels_tune.tune_cnn,
                   SCORERS),
    # 3 epochs of the MobileNet take ~15 s a point on two cores: the control is run for
    # the default scorer only, to keep make eval's time reasonable
    "mobilenet": Subject("mobilenet", "MobileNet-style CNN",
                         EXAMPLES / "digits_mobilenet.tflite",
                         EXAMPLES / "digits_wide_test.npz", mn.images,
                         channels_tune.tune_mobilenet, ("scaled",)),
}


def depthwise_in(tm: TfliteModel, grp: Group) -> str | None:
    """The first depthwise layer a group runs through (Wanda cannot score it), or None."""
    dw = [m.layer for m in grp.members if tm.placements[m.layer].op == "DEPTHWISE_CONV_2D"]
    return dw[0] if dw else None


def scored_layers(tm: TfliteModel, stats: dict) -> dict:
    """The model's layers with the calibration's NAME.act and NAME.calib attached."""
    return {name: replace(layer, activations=stats.get(f"{name}.act"),
                          calib=stats.get(f"{name}.calib"))
            for name, layer in tm.layers.items()}


def keeps_for(layers: dict, groups: list[Group], scorer: str, bp: int) -> dict:
    """{group number: keep flags} of the groups `scorer` prunes at `bp`."""
    _, keeps = group_masks(layers, [(g.channels, g.members) for g in groups],
                           PruneOptions(scorer, sparsity_bp=bp))
    return {g.number: k for g, k in zip(groups, keeps)}


def measure(data: bytes, x: np.ndarray, y: np.ndarray) -> dict:
    macs, weights = footprint.macs_and_weights(data)
    return {"correct": tflm.accuracy(data, x, y)[0], "images": len(y),
            "weight_bytes": weights, "macs": macs}


def _fixes(rec) -> str:
    """What recovery did, per consumer: "lsq 3/4" (3 of 4 consumers fitted by lsq)."""
    if rec.method == "none" or not rec.layers:
        return ""
    done = sum(f.applied == rec.method for f in rec.layers)
    merged = sum(f.merged for f in rec.layers)
    return f"{rec.method} {done}/{len(rec.layers)}" + (
        f", {merged} channels merged" if rec.method == "merge" else "")


def _row(s: Subject, scorer: str, recovery: str, ft: bool, bp: int, channels: int,
         removed: int | None, small: dict, seconds: float | None = None, note: str = "",
         fixes: str = "", merged: int = 0) -> dict:
    """One point of the study (a line of channels.csv); invoke times are filled in when
    the point's models have been timed together."""
    return {"model": s.key, "scorer": scorer, "recovery": recovery, "finetuned": ft,
            "sparsity_bp": bp, "channels_removed": removed, "channels": channels,
            "seconds": None if seconds is None else round(seconds, 3), "fixes": fixes,
            "merged": merged, "note": note, "invoke_us": None, "dense_invoke_us": None,
            **small}


def study(s: Subject, data: digits.Digits, sparsities=SPARSITIES, scorers=SCORERS,
          recoveries=RECOVERIES, tuned=None, epochs: int = channels_tune.EPOCHS,
          log=print) -> dict:
    """Every point of one model: a dict with its rows and what the report says of it."""
    model = s.path.read_bytes()
    tm = parse(model, str(s.path))
    test = np.load(s.test)
    x, y = test["images"], test["labels"]
    calib = s.calib(np.load(EXAMPLES / "digits_calib.npz")["images"])
    t0 = time.perf_counter()
    stats = calibration.stats_arrays(calibration.calibrate(tm, calib))
    calib_s = time.perf_counter() - t0
    layers = scored_layers(tm, stats)
    groups = [g for g in groups_of(tm) if g.prunable]
    channels = sum(g.channels for g in groups)
    dense = measure(model, x, y)
    blocked = {g.number: depthwise_in(tm, g) for g in groups}
    tuned = s.tuned if tuned is None else tuned
    rows, dense_times = [], []
    for scorer in scorers:
        pruned = groups if scorer != "wanda" else [g for g in groups if not blocked[g.number]]
        whole = ", ".join(f"group {g.number} (through {blocked[g.number]})" for g in groups
                          if g not in pruned)
        if not pruned:
            na = {"correct": None, "images": len(y), "weight_bytes": None, "macs": None}
            rows += [_row(s, scorer, "", False, bp, channels, None, na,
                          note=f"n/a: every group runs through a depthwise layer ({whole})")
                     for bp in sparsities]
            log(f"  {s.key}: {scorer} n/a")
            continue
        note = f"Wanda cannot score {whole}: kept whole" if whole else ""
        for bp in sparsities:
            keeps = keeps_for(layers, pruned, scorer, bp)
            removed = sum(int((~k).sum()) for k in keeps.values())
            timed = []
            for method in recoveries:
                t = time.perf_counter()
                rec = recover(tm, keeps, method, calib)
                small = shrink(tm if method == "none" else parse(rec.data, str(s.path)),
                               keeps).data
                spent = time.perf_counter() - t
                timed.append((_row(s, scorer, method, False, bp, channels, removed,
                                   measure(small, x, y), spent, note,
                                   _fixes(rec) if removed else "",
                                   sum(f.merged for f in rec.layers)), small))
            if scorer in tuned:
                t = time.perf_counter()
                model_ft = s.tune(tm, channels_tune.channel_masks(tm, pruned, keeps), data,
                                  epochs)
                small = shrink(parse(model_ft, f"{s.path} fine-tuned"), keeps).data
                spent = time.perf_counter() - t
                timed.append((_row(s, scorer, "none", True, bp, channels, removed,
                                   measure(small, x, y), spent, note), small))
            # invokes interleaved with the dense model's, so the load falls on all alike
            times = footprint.invoke_times([model] + [m for _, m in timed], x[0])
            dense_times.append(times[0])
            for (r, _), t_ in zip(timed, times[1:]):
                r["invoke_us"] = round(t_ * 1e6, 2)
                r["dense_invoke_us"] = round(times[0] * 1e6, 2)
            rows += [r for r, _ in timed]
        log(f"  {s.key}: {scorer} done")
    if dense_times:
        dense["invoke_us"] = round(float(np.median(dense_times)) * 1e6, 2)
    return {"key": s.key, "title": s.title, "path": s.path.relative_to(ROOT).as_posix(),
            "test": s.test.relative_to(ROOT).as_posix(), "calib_seconds": calib_s,
            "calib_images": len(calib), "channels": channels, "dense": dense,
            "groups": [(g.number, g.channels, blocked[g.number]) for g in groups],
            "tuned": [t for t in tuned if t in scorers], "rows": rows}


def sweep(models=tuple(SUBJECTS), sparsities=SPARSITIES, scorers=SCORERS,
          recoveries=RECOVERIES, epochs: int = channels_tune.EPOCHS, tuned=None,
          log=print) -> dict:
    t0, cpu0 = time.perf_counter(), time.process_time()
    data = digits.load()
    out = []
    for key in models:
        out.append(study(SUBJECTS[key], data, sparsities, scorers, recoveries, tuned, epochs,
                         log))
    # the machine's load beside the wall clock: on shared cores the same run takes
    # longer, and its CPU time says how much of that was the study's own work
    return {"models": out, "epochs": epochs, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0, "load": os.getloadavg()[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "eval", metavar="DIR")
    ap.add_argument("--epochs", type=int, default=channels_tune.EPOCHS,
                    help=f"fine-tuning epochs of the control (default {channels_tune.EPOCHS})")
    args = ap.parse_args(argv)
    run = sweep(epochs=args.epochs)
    for path in channels_report.write(args.out, run):
        print(f"wrote {path}")
    print("\n".join(channels_report.verdict(run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
