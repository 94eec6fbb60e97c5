"""make eval, on the board: every scorer at 50 % on the digits model, evaluated on a
(virtual) board and checked against the twin.

Deploys the firmware, pushes examples/digits_mlp.npz, calibrates the gradient proxy on
the board, then for each scorer prunes at 50 % on the board and classifies the 360 test
images there. The board's accuracy and every logit (CRC) must equal the twin's on the
masks the board made; the table goes to docs/eval/board.md. Exit 1 on any difference.

    python -m prune8_eval.onboard [--out docs/eval] [--port P]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from prune8_host.device.connect import port_or_fresh_vboard
from prune8_host.device.deploy import deploy_build
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import (
    calibrate_on_board,
    evaluate_on_board,
    prune,
    push,
    verify_on_board,
)
from prune8_host.files.images import load_images
from prune8_host.files.model import load_model
from prune8_host.twin import scorers
from prune8_host.twin.layer import PruneOptions
from prune8_host.twin.scorers import BLOCK, SUMSQ

ROOT = Path(__file__).resolve().parents[2]  # the checkout: eval/ is not installed
MODEL = ROOT / "examples" / "digits_mlp.npz"
TEST = ROOT / "examples" / "digits_test.npz"
CALIB = ROOT / "examples" / "digits_calib.npz"
COMMAND = "make eval (python -m prune8_eval.onboard)"
BP = 5000


def options(scorer: scorers.Scorer) -> PruneOptions:
    return PruneOptions(scorer.name, sparsity_bp=BP,
                        block=(2, 2) if BLOCK in scorer.needs else None)


def run(port: str | None) -> list[dict]:
    model = load_model(MODEL)
    images, labels = load_images(TEST, with_labels=True)
    calib, _ = load_images(CALIB, with_labels=False)
    rows = []
    with port_or_fresh_vboard(port) as p:
        deploy_build(p, "esp32")
        with BoardSession(p) as s:
            push(s, model, quiet=True)
            calibrate_on_board(s, calib)
            for scorer in scorers.TABLE:
                if SUMSQ in scorer.needs:
                    continue  # the digits model ships no calibration samples
                prune(s, options(scorer))
                checks, masks = verify_on_board(s, model, quiet=True)
                r = evaluate_on_board(s, model, images, labels, masks)
                pruned = r.pop("pruned_model")
                r.update(method=scorer.name, masks_verified=all(c.verified for c in checks),
                         weights_pruned=sum(int(np.count_nonzero(model[m.name].weights))
                                            - int(np.count_nonzero(pruned[m.name].weights))
                                            for m in masks))
                rows.append(r)
    return rows


def write_report(out: Path, rows: list[dict], seconds: float, where: str) -> Path:
    lines = [
        "# On-board check: every scorer at 50 % on the board",
        "",
        f"Made by `{COMMAND}` on {where}, in {seconds:.0f} s. The digits model is pushed to",
        "the board, its gradient-proxy activations are calibrated there (256 images), and",
        "each scorer prunes every layer at 50 % on the board; the board then classifies the",
        "360 test images. Each row compares the board with the twin (`prune8_host.twin.dense`) on",
        "the masks the board made: accuracy, every logit (CRC-32 of all of them), and the",
        "masks themselves (`prune8 verify`).",
        "",
        "| scorer | weights zeroed | board accuracy | twin accuracy | logits identical |"
        " masks verified |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        n = r["images"]
        lines.append(f"| {r['method']} | {r['weights_pruned']} | {r['board_correct']}/{n} = "
                     f"{r['board_correct'] / n:.2%} | {r['twin_correct']}/{n} = "
                     f"{r['twin_correct'] / n:.2%} | {'yes' if r['logits_identical'] else 'NO'}"
                     f" | {'yes' if r['masks_verified'] else 'NO'} |")
    lines += ["", "Blocks are 2x2. Every scorer prunes every layer, fc2 included: for `rows` "
              "that removes half of fc2's rows, which are the classes, hence its low accuracy "
              "(the rows curve in [README.md](README.md) prunes hidden neurons only). Wanda "
              "is absent: the digits model ships no calibration samples for it "
              "(`NAME.calib`).", ""]
    path = out / "board.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval"), metavar="DIR")
    ap.add_argument("--port", metavar="P", help="a real board (default: a virtual board)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.port)
    seconds = time.perf_counter() - t0
    where = f"the board on {args.port}" if args.port else "the virtual board"
    path = write_report(Path(args.out), rows, seconds, where)
    bad = [r["method"] for r in rows if not (r["logits_identical"] and r["masks_verified"]
                                             and r["board_correct"] == r["twin_correct"])]
    print(f"on-board check: {len(rows) - len(bad)} of {len(rows)} scorers equal to the twin "
          f"at 50% ({seconds:.0f} s) -> {path}")
    if bad:
        print(f"differ from the twin: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
