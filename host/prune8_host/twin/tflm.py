"""TensorFlow Lite Micro's own interpreter (PyPI tflite-micro: the reference kernels,
compiled), the judge of int8 inference: twin.dense must give its outputs bit for bit on
FULLY_CONNECTED models (docs/spec.md §8), and it scores .tflite models prune8 cannot run
itself (conv)."""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import os
import signal
import sys
import tempfile
import time

import numpy as np

from prune8_host.errors import ModelError


@contextlib.contextmanager
def _native_messages():
    """TFLM's C++ prints why it refuses a model on file descriptor 2, beside the one line
    a prune8 error is: what it prints while this is open goes to a temporary file, and
    its lines into the list this yields (when the block ends), for the error message."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            said.extend(line.strip() for line in f.read().decode(errors="replace")
                        .splitlines() if line.strip())


def _refused(what: str, e: Exception, said: list[str]) -> ModelError:
    return ModelError(f"{what}: {e}" + (f" ({'; '.join(said[:3])})" if said else ""))


@contextlib.contextmanager
def naming(path):
    """TFLM's refusals inside this block name the file they came from (the one-line
    rule: the interpreter only sees bytes)."""
    try:
        yield
    except ModelError as e:
        if path is None or str(e).startswith(f"{path}:"):
            raise
        raise ModelError(f"{path}: {e}") from None


# A model TFLM has run once in a child process (by digest): it did not crash TFLM there.
_SURVIVED: set[bytes] = set()
TRIAL_S = 60.0  # a trial's bound: far longer than one inference of any model a board runs


def _trial(model: bytes) -> None:
    """Load and run the model once (zero input) in a forked child, where TFLM's C++ may
    crash without taking prune8 with it: a damaged file that prune8's reader and TFLM's
    own checks let through can still make its kernels read out of bounds (the deep
    hostile-file property found one that ended the process with SIGSEGV). A crash, or no
    end within TRIAL_S, is a ModelError; a refusal is left to the caller's own load,
    which says why. Where there is no fork (Windows), nothing is tried."""
    key = hashlib.sha256(model).digest()
    if key in _SURVIVED or not hasattr(os, "fork"):
        return
    from tflite_micro.python.tflite_micro import runtime
    pid = os.fork()
    if pid == 0:  # the child: runs TFLM, says nothing, never returns
        try:
            faulthandler.disable()  # its crash report would reach the parent's stderr
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            it = runtime.Interpreter.from_bytes(model)
            d = it.get_input_details(0)
            it.set_input(np.zeros([int(n) for n in d["shape"]], d["dtype"]), 0)
            it.invoke()
        except BaseException:  # noqa: BLE001 - a refusal: the caller's load reports it
            pass
        os._exit(0)
    deadline = time.monotonic() + TRIAL_S
    status = None
    try:
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif time.monotonic() > deadline:
                raise ModelError(f"TFLM did not finish one inference of the model in "
                                 f"{TRIAL_S:.0f} s: the file is damaged or the model far "
                                 f"too big for a microcontroller")
            else:
                time.sleep(0.002)
    finally:
        if status is None:  # given up, or interrupted (Ctrl-C): the child goes too
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.valid_signals() else f"signal {sig}"
        raise ModelError(f"TFLM crashed running the model ({name}): the file is damaged in "
                         f"a way neither prune8's reader nor TFLM's checks catch")
    _SURVIVED.add(key)


def interpreter(model: bytes):
    """A TFLM interpreter over a .tflite file's bytes (tried first in a child process:
    _trial)."""
    from tflite_micro.python.tflite_micro import runtime
    data = bytes(model)
    _trial(data)
    with _native_messages() as said:
        try:
            return runtime.Interpreter.from_bytes(data)
        except (RuntimeError, ValueError) as e:
            failure = e
    raise _refused("TFLM cannot load the model", failure, said) from None


def _values(it) -> int:
    """How many values the interpreter's model outputs per input (a ModelError for
    none: a damaged file's output may have a dimension of 0, which TFLM runs)."""
    n = int(np.prod([int(d) for d in it.get_output_details(0)["shape"]]))
    if n == 0:
        raise ModelError("the model's output has no values (a dimension of 0): there is "
                         "nothing to compare or score")
    return n


def output_values(model: bytes) -> int:
    """How many values the model outputs per input (at least one)."""
    return _values(interpreter(model))


def outputs(model: bytes, images: np.ndarray) -> np.ndarray:
    """The model's int8 output for every image (images: (n, ...) int8, each image as many
    values as the model's input, in its order)."""
    it = interpreter(model)
    shape = tuple(int(d) for d in it.get_input_details(0)["shape"])  # plain ints, not NumPy's
    dtype = it.get_input_details(0)["dtype"]
    x = np.asarray(images)
    if x.dtype != np.int8 or dtype != np.int8:
        raise ModelError(f"the model's input is {np.dtype(dtype).name} and the images "
                         f"{x.dtype.name}: both must be int8")
    per_image = int(np.prod(shape))
    if x.ndim < 2 or x[0].size != per_image:
        raise ModelError(f"images of {x[0].size if x.ndim else 0} values for a model input "
                         f"of shape {list(shape)} ({per_image} values)")
    _values(it)
    out = []
    with _native_messages() as said:
        try:
            for image in x:
                it.set_input(image.reshape(shape), 0)
                it.invoke()
                out.append(np.asarray(it.get_output(0)).reshape(-1).copy())
        except RuntimeError as e:
            failure = e
        else:
            failure = None
    if failure is not None:
        raise _refused("TFLM cannot run the model", failure, said) from None
    return np.stack(out)


def output_quantization(model: bytes) -> tuple[float, int]:
    """(scale, zero point) of the model's output: real value = scale * (q - zero point)."""
    q = interpreter(model).get_output_details(0)["quantization_parameters"]
    scales, zps = np.atleast_1d(q["scales"]), np.atleast_1d(q["zero_points"])
    if scales.size != 1 or not np.isfinite(scales[0]) or scales[0] <= 0:
        raise ModelError("the model's output has no single positive scale: its outputs "
                         "cannot be read in real units")
    return float(scales[0]), int(zps[0]) if zps.size else 0


def real_outputs(model: bytes, images: np.ndarray) -> np.ndarray:
    """The model's outputs in real units (dequantized with its output's scale)."""
    scale, zp = output_quantization(model)
    return (outputs(model, images).astype(np.float64) - zp) * scale


DRAWN_INPUTS = 256   # inputs drawn when no data is given
DRAW_SEED = 22


def drawn_inputs(model: bytes, count: int = DRAWN_INPUTS, seed: int = DRAW_SEED) -> np.ndarray:
    """`count` inputs drawn uniformly from the whole int8 range of the model's input, with
    a fixed seed: what a prune's effect is measured on when no data is given."""
    it = interpreter(model)
    per_image = int(np.prod([int(d) for d in it.get_input_details(0)["shape"]]))
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (count, per_image), dtype=np.int16).astype(np.int8)


def drift(dense: bytes, pruned: bytes, images: np.ndarray) -> dict:
    """How far the pruned model's int8 outputs moved from the dense one's on `images`:
    the largest and mean absolute difference (int8 steps), the share of outputs that
    changed, the RMS difference in real units and, for a model with several outputs, how
    often the largest output (the class) stayed the same."""
    a = outputs(dense, images).astype(np.int32)
    b = outputs(pruned, images).astype(np.int32)
    d = np.abs(a - b)
    scale, _ = output_quantization(dense)
    out = {"inputs": int(len(images)), "max_int8": int(d.max()),
           "mean_int8": round(float(d.mean()), 3),
           "changed": round(float(np.count_nonzero(d)) / d.size, 4),
           "rms_real": round(float(np.sqrt(np.mean((d * scale) ** 2))), 6)}
    if a.shape[1] > 1:
        out["same_class"] = round(float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))), 4)
    return out


def drift_line(d: dict, source: str) -> str:
    """One line saying how far a prune moved the outputs, and on what."""
    same = f"; the largest output (class) unchanged on {d['same_class']:.1%}" \
        if "same_class" in d else ""
    return (f"outputs moved (TFLM, pruned vs dense, on {source}): up to {d['max_int8']} "
            f"int8 steps, mean {d['mean_int8']}, {d['changed']:.1%} of outputs changed, RMS "
            f"{d['rms_real']:.4g} in real units{same}")


def accuracy(model: bytes, images: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """(correct, n): the largest output (the lowest index among equals) against labels."""
    predicted = outputs(model, images).argmax(axis=1)
    return int(np.count_nonzero(predicted == np.asarray(labels))), len(labels)
