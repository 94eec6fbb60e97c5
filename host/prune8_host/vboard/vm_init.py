# Runs INSIDE the MicroPython VM (not CPython) at every boot of the virtual board.
#
# vboard.mjs compiles this file under the name "<vboard>" and calls the functions
# below; it plays the part of the ESP32 port's frozen _boot.py (mount the flash at /)
# and of main.c's pyexec_file_if_exists("boot.py"/"main.py"). Everything it defines
# is removed from __main__ again before the REPL starts, so user code sees the fresh
# globals a board has (hence the imports inside the functions: a module imported at
# the top would stay behind in __main__).


def _vboard_setup(flash_root, sysname, machine, version, flash_bytes=None):
    import os
    import sys

    import vfs

    # The port mounts the whole Emscripten tree (tmp, home, dev, proc) at "/". A board
    # shows only its flash there, so re-mount a VfsPosix rooted at the flash directory.
    os.umount("/")
    vfs.mount(vfs.VfsPosix(flash_root), "/")
    os.chdir("/")

    # MicroPython 1.27's VfsPosix.rename builds both paths in the one path buffer of a
    # rooted VfsPosix, so rename(a, b) becomes rename(b, b) and fails with ENOENT. A
    # board's littlefs renames fine (prune8 commits every file by a rename), so rename
    # here through a root-less VfsPosix with full paths.
    unrooted = vfs.VfsPosix()

    def full(path):
        if not path.startswith("/"):
            cwd = os.getcwd()
            path = cwd.rstrip("/") + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return flash_root.rstrip("/") + "/" + "/".join(parts)

    os.rename = lambda old, new: unrooted.rename(full(old), full(new))

    vm_name_and_version = sys.version.split("; ", 1)[1]  # "MicroPython v1.27.0 on <date>"
    vm_release = ".".join(str(v) for v in sys.implementation.version[:3])
    build_date = vm_name_and_version.rsplit(" on ", 1)[1]
    if version:
        release = ".".join(str(v) for v in version[:3])
    else:
        release = vm_release
    board_version = "v%s on %s" % (release, build_date)

    # os is a frozen Python package in this VM, so its attributes can be set: give it
    # the uname() a stock ESP32 build has (the VM itself has none).
    from collections import namedtuple
    uname_result = namedtuple("uname_result",
                              ("sysname", "nodename", "release", "version", "machine"))
    uname = uname_result(sysname, sysname, release, board_version, machine)
    os.uname = lambda: uname

    # VfsPosix lists (name, type, inode); an ESP32's littlefs lists (name, type, inode,
    # size), which is what `mpremote ls` shows sizes from.
    posix_ilistdir = os.ilistdir

    def with_sizes(base, entries):
        for entry in entries:
            name = entry[0]
            size = 0
            if entry[1] == 0x8000:
                sep = b"/" if isinstance(name, bytes) else "/"
                path = name if not base or base == "." else base.rstrip(sep) + sep + name
                try:
                    size = os.stat(path)[6]
                except OSError:
                    pass
            yield (name, entry[1], 0, size)

    def ilistdir(*args):
        # Not a generator itself: a missing directory raises here, at the call, as on a board.
        return with_sizes(args[0] if args else "", posix_ilistdir(*args))

    os.ilistdir = ilistdir

    if flash_bytes is not None:
        # VfsPosix reports the host's disk; a board reports its flash partition, which
        # vboard.mjs makes full at flash_bytes of file contents (4 KB littlefs blocks).
        def used(path):
            total = 0
            for entry in posix_ilistdir(path):
                sub = path.rstrip("/") + "/" + entry[0]
                if entry[1] == 0x4000:
                    total += used(sub)
                else:
                    total += os.stat(sub)[6]
            return total

        def statvfs(path):
            free = flash_bytes - used("/")
            free = free // 4096 if free > 0 else 0
            return (4096, 4096, flash_bytes // 4096, free, free, 0, 0, 0, 0, 255)

        os.statvfs = statvfs

    if version:
        _vboard_fake_version(tuple(version), board_version, machine)
    _vboard_uart()

    import errno
    import json
    return json.dumps({
        "vm_banner": "%s; %s" % (vm_name_and_version, sys.implementation._machine),
        "board_banner": "MicroPython %s; %s" % (board_version, machine),
        "errno": dict((k, getattr(errno, k)) for k in dir(errno) if k[:1] == "E"),
    })


def _vboard_uart():
    # The stand-in for the ESP32's machine.UART(0) that prune8's baud switch uses
    # (firmware/prune8/baud.py): `import vboard_uart` finds it in sys.modules. It is
    # vboard.mjs's object itself (rate(r), ready(ms)), so the board's heap holds one
    # proxy for it. The rate goes to the bridge, which paces it and compares it with
    # the host's (pty_bridge.py).
    import sys

    import js

    sys.modules["vboard_uart"] = js.vboardUart


def _vboard_fake_version(version, board_version, machine):
    import sys

    # For fault tests: code that does `import sys` must see an older MicroPython.
    # sys is a built-in module whose attributes cannot be set, but `import` looks in
    # sys.modules first, so a delegating stand-in placed there is what code gets.
    real_sys = sys
    impl = real_sys.implementation

    class _Implementation:
        name = impl.name
        _machine = machine
        _mpy = getattr(impl, "_mpy", None)

        def __repr__(self):
            return "(name=%r, version=%r, _machine=%r)" % (self.name, self.version, self._machine)

    _Implementation.version = version

    class _Sys:
        def __getattr__(self, name):
            return getattr(real_sys, name)

    stand_in = _Sys()
    stand_in.implementation = _Implementation()
    stand_in.version = "3.4.0; MicroPython " + board_version
    real_sys.modules["sys"] = stand_in


def _vboard_drain_interrupt():
    # A KeyboardInterrupt scheduled by a late Ctrl-C that the code never reached must not
    # fire in the next program; a backward jump is where the VM checks for it.
    try:
        for _ in range(2):
            pass
    except KeyboardInterrupt:
        pass


def _vboard_run(name):
    # Like pyexec_file_if_exists(): run a script from the flash in __main__'s globals,
    # Ctrl-C enabled, print an uncaught exception's traceback. Returns 1 when the script
    # asked for a soft reset (SystemExit), else 0.
    import os
    import sys

    import micropython

    try:
        if os.stat(name)[0] & 0x8000 == 0:
            return 0
    except OSError:
        return 0
    micropython.kbd_intr(3)
    try:
        execfile(name)
    except SystemExit:
        return 1
    except BaseException as e:  # noqa: B036 - a board prints every uncaught exception
        import io
        buf = io.StringIO()
        sys.print_exception(e, buf)
        # Drop this runner's own frame: a board's traceback starts at the script.
        print("\n".join(ln for ln in buf.getvalue().split("\n") if '"<vboard>"' not in ln), end="")
    finally:
        micropython.kbd_intr(-1)
        _vboard_drain_interrupt()
    return 0
