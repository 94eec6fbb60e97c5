# micropython-lib's manifest for the firmware package: freeze prune8 into a MicroPython
# image with include("path/to/prune8/firmware/manifest.py") in the board's manifest.
# The frozen profile.py is the source's (the default esp32 profile); `prune8 build
# --board B` writes another one for deploying to a filesystem.
#
# MicroPython's manifest tool runs this file from its own directory. The version is
# read from prune8/__init__.py, the one place it is written.


def _version():
    import re

    with open("prune8/__init__.py") as f:
        m = re.search(r"^__version__ = \"([^\"]+)\"", f.read(), re.M)
    if not m:
        raise ValueError("prune8/__init__.py has no __version__")
    return m.group(1)


metadata(  # the manifest tool defines metadata() and package()
    version=_version(),
    description="Fixed-capacity, allocation-free int8 pruning for MicroPython",
    license="MIT",
)
package("prune8")
