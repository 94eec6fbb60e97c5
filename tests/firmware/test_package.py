"""What `import prune8` loads, and the lazy names of the package (docs/heap.md)."""

import subprocess
import sys


def test_import_prune8_loads_the_pruner_and_nothing_of_the_link_store_or_inference():
    code = ("import sys, prune8\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('prune8'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert "prune8.pruner" in out and "prune8.errors" in out
    for lazy in ("prune8.link", "prune8.receiver", "prune8.store", "prune8.stream",
                 "prune8.dense", "prune8.infer", "prune8.viper", "prune8.viper_dense",
                 "prune8.errors_rest", "prune8.error_types", "prune8.formats", "prune8.calib",
                 "prune8.errors_pruner",
                 "prune8.protocol", "prune8.tiles"):
        assert lazy not in out


def test_lazy_names_load_on_first_use():
    code = ("import prune8\nfrom prune8 import status\n"
            "print(prune8.KERNELS, status.__name__, prune8.errors.quant_relu.__module__,"
            " prune8.errors.min_keep.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["python", "prune8.status", "prune8.errors_rest", "prune8.errors_pruner"]


def test_error_classes_and_submodules_load_when_first_named():
    """prune8.SparsityError and `from prune8 import X` go through the package's
    __getattr__: the classes load at the first error named or built, a submodule at its
    first import; an unknown name is still an error."""
    code = ("import sys, prune8\n"
            "before = 'prune8.error_types' in sys.modules\n"
            "e = prune8.SparsityError\n"
            "from prune8 import dense\n"
            "try:\n"
            "    prune8.no_such_thing\n"
            "    unknown = 'found'\n"
            "except ImportError:\n"
            "    unknown = 'refused'\n"
            "print(before, e.__module__, issubclass(e, prune8.Prune8Error), dense.__name__,"
            " unknown)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "prune8.error_types", "True", "prune8.dense", "refused"]
