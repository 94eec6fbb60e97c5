"""Board profiles: the shipped ones load, and broken files name the file and the key."""

import pytest

from prune8_host.boards import all_boards, board_names, load_board, load_profile_file
from prune8_host.errors import BoardProfileError


def test_shipped_profiles():
    assert {"esp32", "esp32s3", "esp32c3"} <= set(board_names())
    esp32 = load_board()  # the default
    assert (esp32.name, esp32.chip, esp32.flash_offset, esp32.mpy_arch) == \
        ("esp32", "esp32", 0x1000, "xtensawin")
    assert (esp32.max_weights, esp32.max_units) == (2048, 64)
    assert load_board("esp32s3").flash_offset == 0 and load_board("esp32c3").flash_offset == 0
    assert load_board("esp32c3").mpy_arch == "rv32imc"
    for b in all_boards():
        assert b.firmware_image.startswith("ESP32_GENERIC") and b.heap_bytes > 0


def write(tmp_path, text):
    path = tmp_path / "myboard.toml"
    good = load_board("esp32")
    fields = {k: v for k, v in vars(good).items() if k not in ("name", "path")}
    lines = [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items()]
    path.write_text(text(lines).replace("'", '"'))
    return path


@pytest.mark.parametrize("edit, fragment", [
    (lambda ls: ls + ["colour = 'blue'"], "unknown key 'colour'"),
    (lambda ls: [l for l in ls if not l.startswith("max_units")], "missing key 'max_units'"),
    (lambda ls: [l.replace("115200", "'fast'") if l.startswith("baud") else l for l in ls],
     "key 'baud' must be int"),
    (lambda ls: [l.replace("2048", "true") if l.startswith("max_weights") else l for l in ls],
     "key 'max_weights' must be int"),
    (lambda ls: [l.replace("xtensawin", "arm") for l in ls], "key 'mpy_arch' must be one of"),
    (lambda ls: [l.replace("= 64", "= 0") if l.startswith("max_units") else l for l in ls],
     "key 'max_units' must be in"),
    (lambda ls: ls + ["chip = "], "not valid TOML"),
    (lambda ls: [l.replace("45000", "-1") if l.startswith("flash_erase_us") else l
                 for l in ls], "key 'flash_erase_us' must be >= 0"),
    (lambda ls: [l.replace("= 10", "= 0") if l.startswith("cpu_factor") else l for l in ls],
     "key 'cpu_factor' must be > 0"),
])
def test_broken_profiles_name_file_and_key(tmp_path, edit, fragment):
    path = write(tmp_path, lambda ls: "\n".join(edit(ls)) + "\n")
    with pytest.raises(BoardProfileError) as info:
        load_profile_file(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_written_profile_round_trips(tmp_path):
    path = write(tmp_path, lambda ls: "\n".join(ls) + "\n")
    p = load_board(str(path))
    assert p.name == "myboard" and p.max_weights == 2048


def test_unknown_board_lists_the_choices():
    with pytest.raises(BoardProfileError, match="esp32, esp32c3, esp32s3"):
        load_board("esp8266")
