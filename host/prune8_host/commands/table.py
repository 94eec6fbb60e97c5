"""Plain-text tables whose columns widen to fit what they hold (a long layer name does not
push the rest of its row out of line)."""

from __future__ import annotations


def table(columns: list[tuple[str, str, int]], rows: list[list], sep: str = " ") -> str:
    """columns: (header, '<' or '>', minimum width); rows: one value per column.
    Each column is as wide as its widest cell; the last one is not padded."""
    cells = [[str(v) for v in row] for row in rows]
    widths = [max([w, len(h)] + [len(r[i]) for r in cells])
              for i, (h, _, w) in enumerate(columns)]

    def line(values):
        out = [f"{v:{a}{w}}" for v, (_, a, _), w in zip(values, columns, widths)]
        out[-1] = out[-1].rstrip() if columns[-1][1] == "<" else out[-1]
        return sep.join(out)

    return "\n".join([line([h for h, _, _ in columns])] + [line(r) for r in cells])


def verify_table(rows: list[dict], layer_width: int = 12, pruned_width: int = 14) -> str:
    """The table of mask checks (device.verify.LayerCheck.as_dict() rows)."""
    return table([("layer", "<", layer_width), ("method", "<", 10),
                  ("pruned", ">", pruned_width), ("sparsity", ">", 9), (" verified", "<", 0)],
                 [[r["layer"], r["method"], f"{r['pruned']}/{r['n']} {r['unit']}s",
                   f"{r['sparsity_bp'] / 100:.2f}%",
                   " yes" if r["verified"] else f" NO: {r['note']}"] for r in rows])
