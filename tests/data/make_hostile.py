"""Write tests/data/hostile/: files a hostile or careless user might hand to prune8.

    python tests/data/make_hostile.py [OUT_DIR]     (default: tests/data/hostile)

Every file is made from scratch here, byte for byte the same on every run (fixed zip
timestamps), so the corpus in the repository is this script's output:
tests/files/test_hostile.py regenerates it and compares. Each file is refused by every
prune8 command that reads it, with one line naming the file (tests/files/test_hostile.py).
Names say what is wrong: model-*, masks-*, packed-*.
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
    chain = {n: Layer(n, w, quant={"bias": np.zeros(w.shape[0], np.int32),
                                   "mult": np.int32(1 << 30), "shift": np.int32(-8),
                                   "relu": np.int8(1), "in_zp": np.int32(-128),
                                   "out_zp": np.int32(-128), "in_scale": np.float32(0.01),
                                   "w_scale": np.float32(0.02), "out_scale": np.float32(0.03)})
             for n, w in layers().items()}
    tfl = tflite_build.fc_chain({"fc1": chain["fc1"]})
    path("model-damaged.tflite").write_bytes(tfl[:120])
    fb = tflite.schema()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(tfl, 0))
    weights = next(t for t in m.subgraphs[0].tensors if t.name == b"fc1/weights")
    weights.type = 0  # float32, with the int8 bytes: refused before they are read
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=tflite.IDENTIFIER)
    path("model-float-weights.tflite").write_bytes(bytes(b.Output()))

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
