"""Regenerate examples/example_model.npz, byte for byte: the example model of
prune8_host.files.example_model (what `prune8 demo` prunes when given no model).

    python examples/make_example.py   # rewrites examples/example_model.npz
"""

from pathlib import Path

from prune8_host.files.example_model import example_model
from prune8_host.files.model import save_model

if __name__ == "__main__":
    save_model(Path(__file__).with_name("example_model.npz"), example_model())
