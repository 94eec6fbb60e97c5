"""Write tests/data/hostile/: files a hostile or careless user might hand to prune8.

    python tests/data/make_hostile.py [OUT_DIR]     (default: tests/data/hostile)

Every file is made from scratch here, byte for byte the same on every run (fixed zip
timestamps), so the corpus in the repository is this script's output:
tests/files/test_hostile.py regenerates it and compares. Each file is refused by every
prune8 command that reads it, with one line naming the file (tests/files/test_hostile.py).
Names say what is wrong: model-*, masks-*, packed-*; tflite/ holds the malformed and
adversarial .tflite models (hostile_tflite: each class of issue 22, several variants),
which tests/files/test_hostile_tflite.py runs through every command that takes a model.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "host"), str(ROOT / "firmware"), str(ROOT / "eval")]

from prune8_eval import tflite_build  # noqa: E402
from prune8_host.files import tflite  # noqa: E402
from prune8_host.files.masks import META_KEY, save_masks  # noqa: E402
from prune8_host.files.npzio import save_npz  # noqa: E402
from prune8_host.files.packed import pack_layer, packed_bytes  # noqa: E402
from prune8_host.twin.layer import Layer  # noqa: E402
from prune8_host.twin.reference import layer_mask  # noqa: E402

EPOCH = (1980, 1, 1, 0, 0, 0)


def npy_bytes(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def raw_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def layers(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"fc1": rng.integers(-128, 128, (8, 16)).astype(np.int8),
            "fc2": rng.integers(-128, 128, (4, 8)).astype(np.int8)}


def quantized(**override) -> dict[str, np.ndarray]:
    arrays = {}
    for name, w in layers().items():
        arrays[name] = w
        arrays.update({f"{name}.bias": np.zeros(w.shape[0], np.int32),
                       f"{name}.mult": np.int32(1 << 30), f"{name}.shift": np.int32(-8),
                       f"{name}.relu": np.int8(name == "fc1"), f"{name}.in_zp": np.int32(-128),
                       f"{name}.out_zp": np.int32(-128)})
    arrays.update(override)
    return arrays


def masks_with(path: Path, change=None, words=None) -> None:
    """A masks file made by the twin for layers(), its metadata or words then altered."""
    good = Path(str(path) + ".good")
    save_masks(good, [layer_mask(Layer(n, w), "magnitude", sparsity_bp=5000)
                      for n, w in layers().items()])
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    good.unlink()
    meta = json.loads(str(arrays[META_KEY]))
    if change:
        change(meta)
    arrays[META_KEY] = np.array(json.dumps(meta, sort_keys=True))
    if words is not None:
        arrays["fc1"] = words(arrays["fc1"])
    save_npz(path, arrays)


def fc_chain(shapes=None) -> dict[str, Layer]:
    """layers() (or int8 layers of these shapes) with the int8 inference parameters of a
    quantized FULLY_CONNECTED chain, for tflite_build.fc_chain."""
    if shapes is None:
        weights = layers()
    else:
        rng = np.random.default_rng(1)
        weights = {f"fc{i + 1}": rng.integers(-128, 128, s).astype(np.int8)
                   for i, s in enumerate(shapes)}
    return {n: Layer(n, w, quant={"bias": np.zeros(w.shape[0], np.int32),
                                  "mult": np.int32(1 << 30), "shift": np.int32(-8),
                                  "relu": np.int8(1), "in_zp": np.int32(-128),
                                  "out_zp": np.int32(-128), "in_scale": np.float32(0.01),
                                  "w_scale": np.float32(0.02), "out_scale": np.float32(0.03)})
            for n, w in weights.items()}


def model_object(data: bytes):
    """A .tflite's bytes as TFLM's schema object tree (ModelT), to edit."""
    fb = tflite.schema()
    return fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))


def pack_model(m) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=tflite.IDENTIFIER)
    return bytes(b.Output())


def tensor(m, name: str):
    return next(t for t in m.subgraphs[0].tensors if t.name == name.encode())


def with_offset_buffers(m, placed: dict[int, tuple[int | None, int]], tail: bytes) -> bytes:
    """The model in the >2 GB format: buffer i of `placed` gets (offset, size), offset None
    meaning "where `tail` starts" (16-byte aligned after the flatbuffer); `tail` follows
    the flatbuffer. Packed twice: the offsets take 8 bytes whatever their value, so the
    flatbuffer's size is known after the first."""
    for i, (_, size) in placed.items():
        m.buffers[i].data, m.buffers[i].offset, m.buffers[i].size = None, 2 ** 40, size
    end = -(-len(pack_model(m)) // 16) * 16
    for i, (offset, size) in placed.items():
        m.buffers[i].offset = end if offset is None else offset
    fb_bytes = pack_model(m)
    assert len(fb_bytes) <= end
    return fb_bytes + bytes(end - len(fb_bytes)) + tail


def good_tflite() -> bytes:
    """The valid model the hostile .tflite files are made from: fc1 8 x 16, fc2 4 x 8."""
    return tflite_build.fc_chain(fc_chain())


def hostile_tflite() -> dict[str, bytes]:
    """Malformed or adversarial .tflite files made from a valid two-layer FC chain (fc1 8 x
    16, fc2 4 x 8) by editing it with the schema's object API, by class (issue 22):
    indices out of range, shapes, buffers that are not weights, quantization parameters.
    Each must be refused by the reader, naming the file."""
    good = good_tflite()
    out = {}

    def edit(name: str, change, source: bytes = good) -> None:
        m = model_object(source)
        change(m, m.subgraphs[0], m.subgraphs[0].operators)
        out[name] = pack_model(m)

    def setting(obj_of, attr, value):
        return lambda m, g, ops: setattr(obj_of(m, g, ops), attr, value)

    def slot(op: int, i: int, tensor_index: int):  # operator op's input i
        def change(m, g, ops):
            inputs = [int(x) for x in ops[op].inputs]
            inputs[i] = tensor_index
            ops[op].inputs = inputs
        return change

    # indices out of range anywhere (-1 is TFLite's "absent"; Python reads it as the last)
    edit("input-past-tensors", slot(0, 0, 99))
    edit("input-absent", slot(1, 0, -1))
    edit("weights-absent", slot(0, 1, -1))
    edit("weights-past-tensors", slot(1, 1, 7))
    edit("bias-past-tensors", slot(0, 2, 1000))
    edit("output-past-tensors", setting(lambda m, g, ops: ops[1], "outputs", [2 ** 31 - 1]))
    edit("output-absent", setting(lambda m, g, ops: ops[0], "outputs", [-1]))
    edit("no-outputs", setting(lambda m, g, ops: ops[0], "outputs", None))
    edit("one-input", setting(lambda m, g, ops: ops[0], "inputs", [0]))
    edit("no-tensor-list", setting(lambda m, g, ops: g, "tensors", None))
    edit("opcode-past-codes", setting(lambda m, g, ops: ops[1], "opcodeIndex", 5))
    edit("no-operator-codes", setting(lambda m, g, ops: m, "operatorCodes", None))
    edit("buffer-past-buffers", setting(lambda m, g, ops: tensor(m, "fc2/weights"), "buffer",
                                        99))
    edit("bias-buffer-past-buffers", setting(lambda m, g, ops: tensor(m, "fc1/bias"),
                                             "buffer", 2 ** 32 - 1))
    # shapes: negative, zero, past int64 when multiplied, not the buffer's length
    edit("shape-negative", setting(lambda m, g, ops: tensor(m, "fc1/weights"), "shape",
                                   [-8, -16]))
    edit("shape-zero", setting(lambda m, g, ops: tensor(m, "fc2/weights"), "shape", [0, 8]))
    edit("shape-mismatch", setting(lambda m, g, ops: tensor(m, "fc1/weights"), "shape",
                                   [8, 15]))
    edit("shape-3d", setting(lambda m, g, ops: tensor(m, "fc1/weights"), "shape", [2, 4, 16]))
    edit("shape-huge", setting(lambda m, g, ops: tensor(m, "fc1/weights"), "shape",
                               [2 ** 31 - 1, 2 ** 31 - 1]))

    def conv_overflow(m, g, ops):  # four dimensions of 65,536 wrap an int64 product to 0
        m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = 3
        ops[0].builtinOptionsType, ops[0].builtinOptions = 0, None
        tensor(m, "fc1/weights").shape = [65536] * 4
    edit("shape-overflow", conv_overflow)

    # buffers that are not weights
    def offset_into_tables(m, g, ops):  # the >2 GB format, pointing at the root table
        b = m.buffers[tensor(m, "fc1/weights").buffer]
        b.data, b.offset, b.size = None, 8, 128
    edit("offset-into-tables", offset_into_tables)

    def offset_past_end(m, g, ops):
        b = m.buffers[tensor(m, "fc2/weights").buffer]
        b.data, b.offset, b.size = None, 2 ** 40, 32
    edit("offset-past-end", offset_past_end)
    m = model_object(good)
    w1, w2 = tensor(m, "fc1/weights").buffer, tensor(m, "fc2/weights").buffer
    out["offsets-overlap"] = with_offset_buffers(  # fc2's 32 bytes inside fc1's 128
        m, {w1: (None, 128), w2: (None, 32)}, layers()["fc1"].tobytes())
    edit("shared-other-shape", lambda m, g, ops: setattr(
        tensor(m, "fc2/weights"), "buffer", tensor(m, "fc1/weights").buffer))
    square = tflite_build.fc_chain(fc_chain([(8, 8), (8, 8)]))

    def shared_other_scales(m, g, ops):
        tensor(m, "fc2/weights").buffer = tensor(m, "fc1/weights").buffer
        tensor(m, "fc2/weights").quantization.scale = [0.5]
    edit("shared-other-scales", shared_other_scales, square)
    edit("weights-no-data", setting(lambda m, g, ops: m.buffers[
        tensor(m, "fc1/weights").buffer], "data", None))

    # quantization parameters that are not finite and positive, anywhere inferences uses
    def q(name, field, value):
        return setting(lambda m, g, ops: tensor(m, name).quantization, field, value)
    edit("input-scale-nan", q("input", "scale", [float("nan")]))
    edit("input-scale-zero", q("input", "scale", [0.0]))
    edit("output-scale-inf", q("fc2/output", "scale", [float("inf")]))
    edit("output-scale-negative", q("fc1/output", "scale", [-0.03]))
    edit("output-zero-point", q("fc1/output", "zeroPoint", [300]))
    edit("weight-scale-nan", q("fc1/weights", "scale", [float("nan")]))
    edit("weight-scale-zero", q("fc2/weights", "scale", [0.0]))
    edit("channel-scale-inf", q("fc2/weights", "scale", [0.02, 0.02, float("inf"), 0.02]))
    edit("multiplier-too-big", q("fc1/output", "scale", [1e-30]))
    # truncated where a table or a vector starts
    for cut in (len(good) // 2, len(good) - 40):
        out[f"truncated-{cut}"] = good[:cut]
    return out


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    good = layers()
    made = []

    def path(name):
        p = out / name
        made.append(p)
        return p

    # -- files that are not what they say
    path("model-text.npz").write_text("this is not a zip archive\n")
    raw_zip(path("model-no-npy-members.npz"), [("readme.txt", b"hello\n")])
    raw_zip(path("model-empty-zip.npz"), [])
    save_npz(out / "whole.npz", good)
    path("model-truncated.npz").write_bytes((out / "whole.npz").read_bytes()[:300])
    (out / "whole.npz").unlink()
    path("model-truncated.npy").write_bytes(npy_bytes(good["fc1"])[:100])
    path("model-object.npy").write_bytes(npy_bytes(np.array([1, "x"], dtype=object),
                                                   allow_pickle=True))
    raw_zip(path("model-duplicate-member.npz"), [("fc1.npy", npy_bytes(good["fc1"])),
                                                  ("fc1", npy_bytes(good["fc2"]))])
    # -- layers that are not int8 2-D layers
    save_npz(path("model-float.npz"), {"fc1": good["fc1"].astype(np.float32)})
    save_npz(path("model-3d.npz"), {"fc1": good["fc1"].reshape(2, 8, 8)})
    save_npz(path("model-empty-layer.npz"), {"fc1": np.zeros((0, 4), np.int8)})
    save_npz(path("model-orphan-activations.npz"), {**good, "fc9.act": np.zeros(4, np.int8)})
    save_npz(path("model-bad-activations.npz"), {**good, "fc1.act": np.zeros(5, np.int8)})
    # -- names the board cannot hold
    save_npz(path("model-reserved-name.npz"), {"__prune8__": good["fc1"]})
    save_npz(path("model-long-name.npz"), {"w" * 240: good["fc1"]})
    save_npz(path("model-control-name.npz"), {"fc\n1": good["fc1"]})
    # -- int8 inference parameters out of the kernel's range
    save_npz(path("model-zero-point.npz"), quantized(**{"fc1.in_zp": np.int32(300)}))
    save_npz(path("model-multiplier.npz"), quantized(**{"fc2.mult": np.int32(12345)}))
    save_npz(path("model-bias-shape.npz"), quantized(**{"fc1.bias": np.zeros(3, np.int32)}))

    # -- masks files
    def entry(meta):
        return meta["layers"]["fc1"]

    masks_with(path("masks-missing-key.npz"), lambda m: entry(m).pop("tie"))
    masks_with(path("masks-extra-key.npz"), lambda m: entry(m).update(bogus=1))
    masks_with(path("masks-entry-not-an-object.npz"),
               lambda m: m["layers"].update(fc1=5))
    masks_with(path("masks-layers-a-list.npz"), lambda m: m.update(layers=[1, 2]))
    masks_with(path("masks-unknown-method.npz"), lambda m: entry(m).update(method="nope"))
    masks_with(path("masks-unknown-unit.npz"), lambda m: entry(m).update(unit="neuron"))
    masks_with(path("masks-n-not-a-number.npz"), lambda m: entry(m).update(n="x"))
    masks_with(path("masks-format-2.npz"), lambda m: m.update(format=2))
    masks_with(path("masks-float-words.npz"), words=lambda w: w.astype(np.float64))
    masks_with(path("masks-negative-words.npz"), words=lambda w: -w.astype(np.int64))
    masks_with(path("masks-word-count.npz"), words=lambda w: w[:-1])
    masks_with(path("masks-stray-bits.npz"),
               lambda m: entry(m).update(n=120, rows=8, cols=15))
    save_npz(path("masks-no-metadata.npz"), {"fc1": np.zeros(4, np.uint32)})
    save_npz(path("masks-unreadable-metadata.npz"),
             {"fc1": np.zeros(4, np.uint32), META_KEY: np.array("{not json")})

    # -- .tflite models
    tfl = tflite_build.fc_chain({"fc1": fc_chain()["fc1"]})
    path("model-damaged.tflite").write_bytes(tfl[:120])
    m = model_object(tfl)
    weights = next(t for t in m.subgraphs[0].tensors if t.name == b"fc1/weights")
    weights.type = 0  # float32, with the int8 bytes: refused before they are read
    path("model-float-weights.tflite").write_bytes(pack_model(m))
    (out / "tflite").mkdir(exist_ok=True)
    for name, data in hostile_tflite().items():  # run through every model-taking command
        path(f"tflite/{name}.tflite").write_bytes(data)

    # -- packed models
    packed = packed_bytes({n: pack_layer(w) for n, w in good.items()})
    path("packed-truncated.bin").write_bytes(packed[:len(packed) // 2])
    path("packed-bad-magic.bin").write_bytes(b"P8X1" + packed[4:])
    path("packed-trailing-bytes.bin").write_bytes(packed + b"\0\0\0")
    bad = bytearray(packed)
    bad[6 + 1 + len("fc1")] = 9  # the first layer's format index: there are five formats
    path("packed-unknown-format.bin").write_bytes(bytes(bad))
    return made


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "hostile"
    for p in write(target):
        print(p)
