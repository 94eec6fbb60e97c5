from support import ROOT

"""The README's REPL example runs as written (here on CPython; the board suite runs it
on the MicroPython VM) and does what its comments say."""

import contextlib
import io
import re

README = ROOT / "README.md"


def repl_example() -> str:
    text = README.read_text()
    section = text[text.index("## The REPL, by hand"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_repl_example_runs():
    out = io.StringIO()
    scope = {}
    with contextlib.redirect_stdout(out):
        exec(repl_example(), scope)
    assert list(scope["w"]) == [0, 0, 50, 196, 0, 0, 70, 5]   # 1, -2, 3, -4 zeroed
    assert "Mask(n=8, pruned=4, kept=4, sparsity=50.00%)" in out.getvalue()
