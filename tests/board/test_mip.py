"""Installing the firmware the way MicroPython users do: `mpremote mip install` with
firmware/package.json (mip's format), here from a local HTTP server on 127.0.0.1 onto a
fresh virtual board, which then imports and runs it."""

import functools
import json
import subprocess
import sys
import threading
from http.server import HTTPServer, SimpleHTTPRequestHandler

import pytest

import prune8
from prune8_host.device.build import firmware_sources, mip_package
from prune8_host.device.session import BoardSession
from prune8_host.vboard import VirtualBoard
from support import ROOT

FIRMWARE = ROOT / "firmware"
PACKAGE_JSON = FIRMWARE / "package.json"

pytestmark = pytest.mark.timeout(600)


def test_package_json_is_made_from_the_manifests_list():
    """package.json (mip's index) lists what firmware/manifest.py freezes, every module of
    the package, at the version of __init__.py: generated, never kept by hand."""
    assert PACKAGE_JSON.read_text() == mip_package(), "package.json is stale: make package-json"
    pkg = json.loads(PACKAGE_JSON.read_text())
    assert pkg["version"] == prune8.__version__ and pkg["deps"] == []
    assert sorted(dest for dest, _ in pkg["urls"]) == \
        sorted(f"prune8/{p.name}" for p in firmware_sources())


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """firmware/ over HTTP on 127.0.0.1, as a repository's raw files would be."""
    handler = functools.partial(QuietHandler, directory=str(FIRMWARE))
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_mpremote_mip_install_onto_a_board(server):
    with VirtualBoard(board="esp32", baud=0) as vb:
        proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", vb.port, "mip",
                               "install", "--target", "/lib", f"{server}/package.json"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Done" in proc.stdout
        with BoardSession(vb.port, check_firmware=False) as s:
            out = s.exec("import prune8\nprint(prune8.__file__, prune8.__version__, "
                         "prune8.KERNELS)\np = prune8.Pruner()\n"
                         "w = bytearray([1, 254, 50, 196, 3, 252, 70, 5])\np.magnitude(w)\n"
                         "print(p.mask(0.5))")
    lines = out.strip().splitlines()
    assert lines[0] == f"/lib/prune8/__init__.py {prune8.__version__} python"
    assert lines[1] == "Mask(n=8, pruned=4, kept=4, sparsity=50.00%)"
