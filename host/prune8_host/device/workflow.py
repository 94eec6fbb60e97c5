"""The operations on a board that the commands and the studies share: push a model, prune it
there, pull its masks, verify them against the twin, calibrate and evaluate int8
inference there. Each takes an open BoardSession.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from prune8.formats import CALIB_PATH, MASKS_PATH, MODEL_PATH
from prune8.groups_format import GROUPS_PATH
from prune8.protocol import EVAL_FMT
from prune8_host.errors import BoardError, FirmwareMissing
from prune8_host.files.boardstore import groups_file, parse_calib, parse_masks
from prune8_host.files.model import Model
from prune8_host.files.packed import packed_model
from prune8_host.twin import dense
from prune8_host.twin.layer import PruneOptions
from prune8_host.twin.reference import masked_model

from . import calls
from .deploy import deploy_build
from .session import BoardSession
from .transfer import pull_file, push_model, put_file, stream_images
from .verify import check_masks


def board_listing(session: BoardSession, headers: bool = False) -> dict:
    """What the board stores (prune8.status.ls): files, the model's layers (with
    `headers`, each one's stored header in hex), the masks."""
    return session.call_json(calls.LS_HEADERS if headers else calls.LS, timeout=30)


def holds_file(listing: dict, path: str) -> bool:
    """Whether a board listing shows the store file `path` (e.g. formats.CALIB_PATH)."""
    return any(name == path.rsplit("/", 1)[1] for name, _ in listing["files"])


def push(session: BoardSession, model: Model, only: list[str] | None = None,
         quiet: bool = False) -> dict:
    """Push `model` (or only the layers named in `only`); report what went on the wire."""
    board_layers = None
    kept_bytes = 0
    kept_headers = None
    if only:
        listing = board_listing(session, headers=True)
        entries = (listing["model"] or {}).get("layers", [])
        board_layers = [entry["name"] for entry in entries]
        kept_headers = {entry["name"]: bytes.fromhex(entry["header"]) for entry in entries}
        kept_bytes = sum(size for name, size in listing["files"]
                         if name == MODEL_PATH.rsplit("/", 1)[1])
    model_id, link = push_model(session, model, only=only, board_layers=board_layers,
                                quiet=quiet, kept_bytes=kept_bytes, kept_headers=kept_headers)
    sent = [n for n in model if not only or n in only]
    payload = sum(len(model.record(n).data) for n in sent)
    return {"model_id": model_id, "layers": sent, "payload_bytes": payload,
            "wire_bytes": link.tx_bytes, "retries": link.retries}


def push_unless_held(session: BoardSession, model: Model, quiet: bool = False) -> dict:
    """push(), unless the board already holds exactly this model (every layer's CRC):
    then nothing is sent, and the report says it was reused."""
    listing = board_listing(session)
    if holds_model(listing, model):
        return {"model_id": listing["model"]["id"], "layers": list(model), "payload_bytes": 0,
                "wire_bytes": 0, "retries": 0, "reused": True}
    return dict(push(session, model, quiet=quiet), reused=False)


def prune(session: BoardSession, options: PruneOptions,
          layers: list[str] | None = None) -> dict:
    """Prune the stored model on the board (every layer, or those in `layers`), from a
    soft reset: the prune then has the heap a board has after boot (what the push or
    the listing loaded is gone), and the peak it reports counts from boot."""
    timeout = prune_timeout(session, options)
    session.soft_reset()
    # The import as a command of its own: a real board collects the loader's garbage
    # anyway, the virtual board only between commands (docs/heap.md)
    session.exec(calls.PRUNE_IMPORT)
    result = session.call_json(calls.prune(options, layers), timeout=timeout)
    if not result.get("ok"):
        raise BoardError(result.get("error", "the board could not prune"))
    result["sparsity_bp"] = options.sparsity_bp
    return result


def prune_groups(session: BoardSession, model: Model, groups, options: PruneOptions,
                 quiet: bool = False) -> dict:
    """Send the channel groups ((channels, members) pairs of `model`, which the board
    holds) and mask them there (prune8.channels), from a soft reset as `prune`; the
    board's report."""
    listing = board_listing(session)
    if not holds_model(listing, model):
        raise BoardError("the board holds another model than this one: push it first")
    put_file(session, GROUPS_PATH, groups_file(listing["model"]["id"], groups, model),
             quiet=quiet)
    timeout = prune_timeout(session, options, passes=2)  # a layer is read as rows and cols
    session.soft_reset()
    session.exec(calls.GROUPS_IMPORT)  # a command of its own, as in prune()
    result = session.call_json(calls.prune_groups(options), timeout=timeout)
    if not result.get("ok"):
        raise BoardError(result.get("error", "the board could not prune the channel groups"))
    result["sparsity_bp"] = options.sparsity_bp
    return result


def prune_timeout(session: BoardSession, options: PruneOptions, passes: int = 1) -> float:
    """Seconds to wait for the board's prune: two minutes, and 2 ms per weight and step
    (or pass over the weights) on top (a generous bound for portable Python on an
    ESP32, streamed layers included)."""
    listing = board_listing(session)
    weights = sum(entry["rows"] * entry["cols"]
                  for entry in (listing["model"] or {}).get("layers", []))
    return 120 + 0.002 * weights * max(passes, options.steps)


def pull(session: BoardSession, quiet: bool = False):
    """(listing, masks) of the board's current masks; refuses missing or stale ones."""
    listing = board_listing(session)
    if not listing.get("masks"):
        raise BoardError("the board holds no masks: run prune8 prune first")
    if listing["masks"]["stale"]:
        raise BoardError("the board's masks were made for another model than the one it "
                         "holds now: run prune8 prune again")
    _, masks = parse_masks(pull_file(session, MASKS_PATH, quiet=quiet))
    return listing, masks


def verify_on_board(session: BoardSession, model: Model, quiet: bool = False):
    """(checks, masks): the board's masks recomputed by the twin from `model`, with the
    activations the board calibrated itself (prune8 calibrate) where it has them."""
    listing, masks = pull(session, quiet)
    crcs = {entry["name"]: entry["crc"] for entry in listing["model"]["layers"]}
    return check_masks(model, masks, crcs, calibrated(session, listing, quiet)), masks


def calibrated(session: BoardSession, listing: dict, quiet: bool = True) -> dict:
    """{layer: int8 activations} the board calibrated itself (prune8 calibrate) for the
    model it holds now; {} when it has none for that model."""
    if not listing.get("model") or not holds_file(listing, CALIB_PATH):
        return {}
    calib_id, acts = parse_calib(pull_file(session, CALIB_PATH, quiet=quiet))
    return acts if calib_id == listing["model"]["id"] else {}


def holds_model(listing: dict, model: Model) -> bool:
    """Whether a board listing shows exactly this model (every layer's CRC)."""
    board = {e["name"]: e["crc"] for e in (listing["model"] or {"layers": []})["layers"]}
    return board == {name: model.record(name).crc for name in model}


def check_board_model(session: BoardSession, model: Model, push_it: bool = False,
                      quiet: bool = True) -> dict:
    """The board's listing, after checking it holds exactly this model; with `push_it`,
    a board that holds another one (or none) is sent this one first."""
    listing = board_listing(session)
    if holds_model(listing, model):
        return listing
    if not push_it:
        raise BoardError("the board holds another model than this one: pass --push to send "
                         "it first (or run prune8 push MODEL)")
    push(session, model, quiet=quiet)
    return board_listing(session)


def calibrate_on_board(session: BoardSession, images, quiet: bool = True) -> bytes:
    """Run calibration images through the stored model on the board; the activations
    it keeps (and replies with), layer after layer."""
    return stream_images(session, calls.CALIBRATE, images, quiet=quiet)


def evaluate_on_board(session: BoardSession, model, images, labels, masks=(), packed=None,
                      with_masks: bool = True, quiet: bool = True) -> dict:
    """Classify images on the board (its stored model with its masks, or its packed
    model) and compare with the twin on the same masks: accuracy and every logit."""
    reply = stream_images(session, calls.evaluate(with_masks, packed is not None), images,
                          labels, quiet=quiet)
    n, correct, lo, hi = struct.unpack(EVAL_FMT, reply)
    pruned = packed_model(packed) if packed else masked_model(model, list(masks))
    logits = dense.logits(pruned, images)
    twin_correct = int((dense.predict(pruned, images) == labels).sum())
    return {"images": n, "board_correct": correct, "board_accuracy": correct / n,
            "twin_correct": twin_correct, "twin_accuracy": twin_correct / n,
            "logits_identical":
                (lo | (hi << 16)) == zlib.crc32(logits.astype(np.int8).tobytes()),
            "pruned_model": pruned}


def deploy_if_needed(port: str, profile, baud: int | None = None, quiet: bool = True,
                     note=None) -> bool:
    """Deploy the firmware to the board on `port` unless it already runs this host's
    prune8; True when it deployed. `note(text)` is told before a deploy."""
    try:
        with BoardSession(port, baud=baud or profile.baud):
            return False
    except FirmwareMissing:
        pass
    if note:
        note(f"prune8: deploying the firmware to {port}")
    deploy_build(port, profile, baud=baud or profile.baud, quiet=quiet)
    return True
