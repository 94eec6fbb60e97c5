"""Flash bytes per layer at 50 / 75 / 90 % sparsity for every storage format.

Magnitude pruning (unstructured) and row pruning (structured) of each layer of a model;
sizes are the payload bytes of prune8_host.files.packed (docs/sparse.md), exact, not estimated.

    python bench/bench_sparse.py [MODEL]     (make bench runs it on the shipped model)
"""

from __future__ import annotations

import sys

from prune8_host.files import packed as sparse
from prune8_host.files.model import load_model
from prune8_host.twin.reference import apply_layer_mask, layer_mask


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else "examples/example_model.npz"
    print(f"flash bytes per layer of {path} (payload; dense = 1 byte per weight)")
    head = f"{'layer':<6} {'method':<9} {'sparsity':>8} " + " ".join(
        f"{f:>7}" for f in sparse.FORMATS) + "  smallest"
    print(head)
    for layer in load_model(path).values():
        for method in ("magnitude", "rows"):
            for bp in (5000, 7500, 9000):
                m = layer_mask(layer, method, sparsity_bp=bp)
                w = apply_layer_mask(layer.weights, m)
                sizes = {}
                for p in sparse.candidates(w):
                    sizes[p.format] = min(sizes.get(p.format, p.size), p.size)
                best = sparse.pack_layer(w)
                print(f"{layer.name:<6} {method:<9} {bp / 100:>7.0f}% " + " ".join(
                    f"{sizes[f]:>7}" for f in sparse.FORMATS)
                    + f"  {best.format}{f' {best.br}x{best.bc}' if best.br else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
