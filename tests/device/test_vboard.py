"""The virtual board as mpremote sees it: CLI and library, unchanged, over a pty.

Timing: the machine is shared and noisy, so no test asserts how long something takes;
the pacing test compares a paced with an unpaced transfer in the same test.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from prune8_host.vboard import VirtualBoard
from prune8_host.vboard.uart import RxPath, TxPath, Wire

pytestmark = pytest.mark.timeout(300)

MPREMOTE = [sys.executable, "-m", "mpremote"]


def mpremote(port: str, *args: str, check: bool = True, timeout: float = 180):
    proc = subprocess.run([*MPREMOTE, "connect", port, *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mpremote {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


@contextlib.contextmanager
def transport(port: str, soft_reset: bool = False):
    t = SerialTransport(port, baudrate=115200)
    try:
        t.enter_raw_repl(soft_reset=soft_reset, timeout_overall=60)
        yield t
    finally:
        with contextlib.suppress(Exception):
            t.exit_raw_repl()
        t.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent has just not reaped it yet).
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def wait_dead(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- the line model


def test_wire_paces_bytes_at_ten_bits_each():
    w = Wire(10000)  # 1 ms per byte
    w.push(b"abcdefghijklmnop", now=100.0)
    assert w.take(100.0) == b""
    assert w.take(100.0015) == b"a"
    assert w.take(100.0035) == b"bc"
    # After the bridge was held up, the line does not deliver the backlog in one burst.
    assert len(w.take(101.0)) == 5
    assert w.take(101.0) == b""
    unpaced = Wire(0)
    unpaced.push(b"xyz", now=5.0)
    assert unpaced.take(5.0) == b"xyz"


def test_rx_fifo_drops_overflow_and_swallows_the_interrupt_char():
    rx = RxPath(0, fifo_size=4, grace=0.5)
    rx.request(now=0.0, intr_char=3)
    rx.receive(b"ab", now=1.0)
    rx.step(1.0)
    assert rx.take_for_vm(1.0) == b"ab" and rx.in_flight == 2
    # The VM is busy (it has not asked again): two bytes of room left, then the line
    # holds for the grace period, then what does not fit is dropped.
    rx.receive(b"cd\x03efg", now=1.1)
    assert rx.step(1.1) == 1  # the Ctrl-C became an interrupt, not data
    assert bytes(rx.fifo) == b"cd" and rx.dropped == 0 and rx.backlog() == 3
    rx.step(2.0)  # 1.0 s after the VM last asked > grace
    assert bytes(rx.fifo) == b"cd" and rx.dropped == 3
    rx.request(now=2.1, intr_char=-1)
    assert rx.take_for_vm(2.1) == b"cd"
    rx.receive(b"\x03", now=2.2)  # kbd_intr(-1) / REPL: 0x03 is plain data
    assert rx.step(2.2) == 0 and bytes(rx.fifo) == b"\x03"


# ---------------------------------------------------------------- mpremote, unchanged


def test_exec_and_eval_with_the_mpremote_library(vboard):
    with transport(vboard.port) as t:
        assert t.exec("print(6 * 7)").strip() == b"42"
        assert t.eval("[1, 'two', b'3']") == [1, "two", b"3"]
        with pytest.raises(TransportExecError) as info:
            t.exec("1 / 0")
        assert "ZeroDivisionError" in info.value.error_output


def test_exec_eval_run_with_the_mpremote_cli(vboard, tmp_path):
    assert mpremote(vboard.port, "exec", "print('hello from', 'vboard')").stdout.strip() \
        == "hello from vboard"
    assert mpremote(vboard.port, "eval", "2 ** 10").stdout.strip() == "1024"
    assert mpremote(vboard.port_link, "eval", "2 ** 11").stdout.strip() == "2048"
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint(sys.implementation.name, sum(range(10)))\n")
    assert mpremote(vboard.port, "run", str(script)).stdout.strip() == "micropython 45"


def test_board_identity(vboard):
    assert vboard.profile.name == "esp32" and vboard.profile.heap_bytes > 0
    with transport(vboard.port) as t:
        uname = t.eval("tuple(__import__('os').uname())")
        assert uname[0] == "esp32" and uname[2] == "1.27.0"
        assert uname[4] == "Generic ESP32 module with ESP32"
        assert t.eval("__import__('sys').path") == ["", ".frozen", "/lib"]
        assert t.eval("__import__('os').listdir('/') == "
                      "[n for n in __import__('os').listdir('/') if n not in "
                      "('tmp', 'home', 'dev', 'proc', 'flash')]")


def test_cp_both_ways_binary_and_20k(vboard, tmp_path):
    all_bytes = bytes(range(256))
    big = os.urandom(20 * 1024)
    (tmp_path / "all.bin").write_bytes(all_bytes)
    (tmp_path / "big.bin").write_bytes(big)
    mpremote(vboard.port, "cp", str(tmp_path / "all.bin"), ":cp_all.bin")
    mpremote(vboard.port, "cp", str(tmp_path / "big.bin"), ":cp_big.bin")
    # The board's flash is the host directory.
    assert (vboard.flash_dir / "cp_all.bin").read_bytes() == all_bytes
    assert (vboard.flash_dir / "cp_big.bin").read_bytes() == big
    mpremote(vboard.port, "cp", ":cp_all.bin", str(tmp_path / "all.back"))
    mpremote(vboard.port, "cp", ":cp_big.bin", str(tmp_path / "big.back"))
    assert (tmp_path / "all.back").read_bytes() == all_bytes
    assert (tmp_path / "big.back").read_bytes() == big
    mpremote(vboard.port, "rm", ":cp_all.bin", ":cp_big.bin")


def test_ls_mkdir_rm_rmdir(vboard, tmp_path):
    (tmp_path / "f.txt").write_text("twelve bytes")
    mpremote(vboard.port, "mkdir", ":lsdir")
    mpremote(vboard.port, "cp", str(tmp_path / "f.txt"), ":lsdir/f.txt")
    listing = mpremote(vboard.port, "ls", ":lsdir").stdout
    assert "12 f.txt" in listing  # sizes, as littlefs on a board reports them
    assert (vboard.flash_dir / "lsdir" / "f.txt").read_text() == "twelve bytes"
    assert "lsdir/" in mpremote(vboard.port, "ls").stdout
    mpremote(vboard.port, "rm", ":lsdir/f.txt")
    assert not (vboard.flash_dir / "lsdir" / "f.txt").exists()
    mpremote(vboard.port, "rmdir", ":lsdir")
    assert not (vboard.flash_dir / "lsdir").exists()
    assert "lsdir" not in mpremote(vboard.port, "ls").stdout


def test_missing_file_errno_is_micropythons(vboard):
    proc = mpremote(vboard.port, "cat", ":no_such_file", check=False)
    assert proc.returncode != 0
    assert "No such file or directory" in proc.stderr
    with transport(vboard.port) as t:
        with pytest.raises(OSError) as info:
            t.fs_stat("no_such_file")
        assert info.value.errno == errno.ENOENT
        with pytest.raises(TransportExecError) as info:
            t.exec("import os\nos.stat('no_such_file')")
        assert info.value.error_output.strip().endswith("OSError: [Errno 2] ENOENT")
        t.exec("import os\nos.mkdir('errno_dir')")
        with pytest.raises(TransportExecError) as info:
            t.exec("os.mkdir('errno_dir')")
        assert "[Errno 17] EEXIST" in info.value.error_output
        t.exec("os.rmdir('errno_dir')")


def test_writes_reach_the_flash_directory_promptly(vboard):
    with transport(vboard.port) as t:
        t.exec("f = open('prompt.txt', 'w')\nf.write('abc')\nf.flush()")
        assert (vboard.flash_dir / "prompt.txt").read_text() == "abc"  # flush
        t.exec("f.write('def')\nf.close()")
        assert (vboard.flash_dir / "prompt.txt").read_text() == "abcdef"  # close
        t.exec("import os\nos.rename('prompt.txt', 'renamed.txt')")
        assert not (vboard.flash_dir / "prompt.txt").exists()
        assert (vboard.flash_dir / "renamed.txt").read_text() == "abcdef"
        t.exec("os.remove('renamed.txt')")
        assert not (vboard.flash_dir / "renamed.txt").exists()


def test_rename_to_a_shorter_name_in_a_subdirectory_over_an_existing_file(vboard):
    # MicroPython's rooted VfsPosix.rename gets this wrong (both paths share one buffer);
    # the board's littlefs does not, and prune8 commits every file this way.
    with transport(vboard.port) as t:
        t.exec("import os\ntry:\n os.mkdir('/rn')\nexcept OSError:\n pass\n"
               "open('/rn/data.bin', 'w').write('old')\n"
               "open('/rn/data.bin.tmp', 'w').write('new')\n"
               "os.rename('/rn/data.bin.tmp', '/rn/data.bin')\n"
               "os.chdir('/rn')\nos.rename('data.bin', '../rn/d')\nos.chdir('/')")
        assert t.eval("open('/rn/d').read()") == "new"
        assert t.eval("sorted(os.listdir('/rn'))") == ["d"]
    assert (vboard.flash_dir / "rn" / "d").read_text() == "new"
    assert not (vboard.flash_dir / "rn" / "data.bin.tmp").exists()


def test_soft_reset_gives_a_fresh_interpreter_and_keeps_files(vboard):
    with transport(vboard.port) as t:
        t.exec("soft_reset_global = 123\nopen('kept.txt', 'w').write('kept')")
        assert t.eval("'soft_reset_global' in globals()") is True
        # What mpremote sends for a soft reset, and what a board answers.
        t.serial.write(b"\x04")
        banner = t.read_until(1, b"raw REPL; CTRL-B to exit\r\n", timeout=30)
        assert banner.endswith(b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n")
        assert t.eval("'soft_reset_global' in globals()") is False
        assert t.eval("open('kept.txt').read()") == "kept"
        t.exec("import os\nos.remove('kept.txt')")
    mpremote(vboard.port, "soft-reset")
    assert mpremote(vboard.port, "eval", "1").stdout.strip() == "1"


def test_files_persist_across_a_restart_of_the_board(fresh_vboard, tmp_path):
    flash = tmp_path / "flash"
    vb = fresh_vboard(flash_dir=flash)
    mpremote(vb.port, "exec", "open('persist.txt', 'w').write('still here')")
    mpremote(vb.port, "mkdir", ":sub")
    vb.stop()
    assert (flash / "persist.txt").read_text() == "still here"
    vb2 = fresh_vboard(flash_dir=flash)
    assert mpremote(vb2.port, "eval", "open('persist.txt').read()").stdout.strip() \
        == "still here"
    assert "sub/" in mpremote(vb2.port, "ls").stdout


def test_raw_paste_works_as_on_an_esp32(vboard):
    # mpremote uses raw-paste mode when the board has it: code far longer than the
    # 256-byte window arrives whole under its flow control, errors come back as errors.
    with transport(vboard.port) as t:
        code = "x = 0\n" + "x += 1\n" * 2000 + "print(x)"
        assert t.exec(code).strip() == b"2000"
        assert t.use_raw_paste is True
        with pytest.raises(TransportExecError, match="ZeroDivisionError"):
            t.exec("print(1)\n1 / 0")
        assert t.eval("6 * 7") == 42


def test_raw_paste_ends_on_ctrl_c_with_keyboard_interrupt(vboard):
    with transport(vboard.port) as t:
        assert t.read_until(1, b">", timeout=10).endswith(b">")
        t.serial.write(b"\x05A\x01")
        assert t.serial.read(2) == b"R\x01"
        assert t.serial.read(2) == (256).to_bytes(2, "little")  # the window
        t.serial.write(b"print('never')\x03")
        assert t.read_until(1, b"\x04", timeout=10).endswith(b"\x04")  # the end, at once
        out, err = t.follow(timeout=30)
        assert b"never" not in out and b"KeyboardInterrupt" in err
        assert t.eval("1 + 1") == 2


def test_kbd_intr_ctrl_c_interrupts_a_loop_reading_stdin(vboard):
    with transport(vboard.port) as t:
        t.exec_raw_no_follow("import sys\nprint('ready')\nwhile True:\n sys.stdin.buffer.read(1)")
        assert t.read_until(1, b"ready\n", timeout=30).endswith(b"ready\n")
        t.serial.write(b"some data")
        time.sleep(0.2)
        t.serial.write(b"\x03")
        out, err = t.follow(timeout=30)
        assert b"KeyboardInterrupt" in err
        assert t.eval("1 + 1") == 2  # the board is usable afterwards


def test_kbd_intr_disabled_makes_ctrl_c_data(vboard):
    with transport(vboard.port) as t:
        t.exec_raw_no_follow("import sys, micropython\nmicropython.kbd_intr(-1)\n"
                             "print('ready')\nd = sys.stdin.buffer.read(4)\nprint(repr(d))")
        assert t.read_until(1, b"ready\n", timeout=30).endswith(b"ready\n")
        t.serial.write(b"a\x03b\x03")
        out, err = t.follow(timeout=30)
        assert err == b""
        assert out.strip() == b"b'a\\x03b\\x03'"


def test_baud_pacing_slows_a_transfer(fresh_vboard):
    payload = "print('y' * 1500)"

    def timed(vb) -> float:
        with transport(vb.port) as t:
            t.exec("print(1)")  # warm up: raw-paste refused, prompt ready
            start = time.monotonic()
            assert t.exec(payload).strip() == b"y" * 1500
            return time.monotonic() - start

    unpaced = timed(fresh_vboard(baud=0))
    paced = timed(fresh_vboard(baud=9600))  # 1.0 ms per byte: >= 1.5 s for the output
    assert paced > 3 * unpaced, (paced, unpaced)


def test_bounded_fifo_drops_what_the_program_does_not_read(fresh_vboard):
    vb = fresh_vboard(baud=115200)
    sent = bytes(0x20 + (i * 7) % 95 for i in range(1000))  # printable: no Ctrl-C in it
    code = textwrap.dedent("""\
        import sys, time
        print('ready')
        t = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t) < 3000:
            pass
        d = sys.stdin.buffer.read(256)
        print(d.hex())
        """)
    with transport(vb.port) as t:
        t.exec_raw_no_follow(code)
        assert t.read_until(1, b"ready\n", timeout=30).endswith(b"ready\n")
        t.serial.write(sent)
        out, err = t.follow(timeout=60)
    assert err == b""
    # The board kept what fit in its 256-byte buffer; the rest was lost, as on a UART.
    assert bytes.fromhex(out.decode().strip()) == sent[:256]
    assert vb.dropped == len(sent) - 256


def test_hard_reset_mid_execution(fresh_vboard):
    vb = fresh_vboard()
    mpremote(vb.port, "exec", "with open('before.txt', 'w') as f:\n f.write('safe')")
    old_pid = vb.node_pid
    with transport(vb.port) as t:
        t.exec_raw_no_follow("f = open('torn.txt', 'w')\nf.write('partial')\nwhile True:\n pass")
        time.sleep(0.5)
        vb.hard_reset()
        # Power-on output: the ROM bootloader, then MicroPython's friendly banner.
        boot = t.read_until(1, b">>> ", timeout=30)
        assert b"rst:0x1 (POWERON_RESET)" in boot
        assert b"MicroPython v1.27.0" in boot and b"Generic ESP32 module with ESP32" in boot
    assert wait_dead(old_pid)
    assert vb.node_pid not in (None, old_pid)
    with transport(vb.port) as t:
        assert t.eval("open('before.txt').read()") == "safe"
        # Never closed before the reset: not written, and nothing else harmed.
        assert t.eval("__import__('os').listdir()") == ["before.txt"]


def test_boot_and_main_run_at_power_on(fresh_vboard, tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "boot.py").write_text("print('boot.py ran')\n")
    (flash / "main.py").write_text("print('main.py ran')\nfrom_main = 1\n")
    vb = fresh_vboard(flash_dir=flash)
    fd = os.open(vb.port, os.O_RDWR | os.O_NOCTTY)
    try:
        vb.hard_reset()
        seen = b""
        deadline = time.monotonic() + 30
        while not seen.endswith(b">>> ") and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                seen += os.read(fd, 4096)
    finally:
        os.close(fd)
    assert seen.index(b"boot.py ran") < seen.index(b"main.py ran") < seen.index(b">>> ")
    # main.py runs in __main__, so the REPL sees what it defined ('resume': no soft
    # reset, after which main.py would not run again, the raw REPL being active).
    assert mpremote(vb.port, "resume", "eval", "from_main").stdout.strip() == "1"


def test_mpremote_takes_over_a_board_whose_main_py_prints_forever(fresh_vboard, tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("n = 0\nwhile True:\n    print('tick', n)\n    n += 1\n")
    vb = fresh_vboard(flash_dir=flash, baud=115200)  # returns: main.py keeps running
    assert mpremote(vb.port, "eval", "'n' in globals()").stdout.strip() == "False"


def test_rx_hook_injects_faults(fresh_vboard):
    vb = fresh_vboard()
    vb.rx_hook = lambda chunk: chunk.replace(b"6 * 7", b"6 * 8")
    assert mpremote(vb.port, "eval", "6 * 7").stdout.strip() == "48"


def test_two_boards_at_once(fresh_vboard):
    a, b = fresh_vboard(), fresh_vboard(board="esp32s3")
    assert a.port != b.port and a.flash_dir != b.flash_dir
    with transport(a.port) as ta, transport(b.port) as tb:
        ta.exec("x = 'a'")
        tb.exec("x = 'b'")
        assert (ta.eval("x"), tb.eval("x")) == ("a", "b")
        assert tb.eval("__import__('os').uname().machine") == "Generic ESP32S3 module with ESP32S3"


def test_no_node_process_left_after_stop(fresh_vboard):
    vb = fresh_vboard()
    pid = vb.node_pid
    assert pid and alive(pid)
    vb.stop()
    assert wait_dead(pid)
    assert vb.node_pid is None


def test_node_dies_with_a_killed_python_parent(tmp_path):
    script = ("import sys, time\nfrom prune8_host.vboard import VirtualBoard\n"
              f"vb = VirtualBoard(baud=0, flash_dir={str(tmp_path / 'flash')!r}).start()\n"
              "print(vb.node_pid, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        assert alive(pid)
    finally:
        proc.kill()
        proc.wait()
    assert wait_dead(pid)


def test_silent_port_never_answers(fresh_vboard):
    vb = fresh_vboard(mode="silent")
    # mpremote reads a /dev/pts device without timeout unless pyserial has one ...
    t = SerialTransport(vb.port, baudrate=115200, timeout=1)
    try:
        with pytest.raises(TransportError):
            t.enter_raw_repl(soft_reset=False, timeout_overall=2)
    finally:
        t.close()
    # ... and treats the link like a USB-serial port, whose timeouts apply.
    proc = mpremote(vb.port_link, "exec", "print(1)", check=False, timeout=120)
    assert proc.returncode != 0 and "could not enter raw repl" in proc.stderr


def test_older_micropython_version(fresh_vboard):
    vb = fresh_vboard(micropython_version=(1, 19, 1))
    with transport(vb.port) as t:
        t.exec("import sys, os")
        assert t.eval("sys.implementation.version") == (1, 19, 1)
        assert t.eval("os.uname().release") == "1.19.1"
        assert "MicroPython v1.19.1" in t.eval("sys.version")


def test_cli_foreground_stops_cleanly_on_sigterm_and_ctrl_c(tmp_path):
    for sig in (signal.SIGTERM, signal.SIGINT):
        port_file = tmp_path / f"port-{sig}"
        proc = subprocess.Popen([sys.executable, "-m", "prune8_host.cli", "vboard",
                                 "--baud", "0", "--flash", str(tmp_path / "flash"),
                                 "--port-file", str(port_file)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port = proc.stdout.readline().strip()
            assert port.startswith("/dev/pts/") and port_file.read_text().strip() == port
            assert mpremote(port, "eval", "3 * 3").stdout.strip() == "9"
            children = [int(p) for task in Path(f"/proc/{proc.pid}/task").iterdir()
                        for p in (task / "children").read_text().split()]
            assert children
            proc.send_signal(sig)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert all(wait_dead(pid) for pid in children)
        assert not port_file.exists()


def test_flash_capacity_gives_enospc_like_a_full_partition(fresh_vboard):
    vb = fresh_vboard(flash_bytes=3000)
    with transport(vb.port) as t:
        t.exec("f = open('a.bin', 'wb'); f.write(bytes(2000)); f.close()")
        with pytest.raises(TransportExecError, match="OSError: 28"):  # ENOSPC
            t.exec("f = open('b.bin', 'wb'); f.write(bytes(2000)); f.close()")
        t.exec("import os; os.remove('a.bin')")
        t.exec("f = open('b.bin', 'wb'); f.write(bytes(2000)); f.close()")  # room again
    assert (vb.flash_dir / "b.bin").stat().st_size == 2000


def test_one_virtual_board_per_flash_directory(tmp_path):
    flash = tmp_path / "flash"
    busy = threading.Event()
    first = VirtualBoard(baud=0, flash_dir=flash).start()
    second = VirtualBoard(baud=0, flash_dir=flash, on_flash_busy=lambda d: busy.set())
    try:
        waiter = threading.Thread(target=second.start)
        waiter.start()
        assert busy.wait(60)            # told that the flash is in use ...
        assert second.port is None      # ... and waiting: no port, no VM yet
        first.stop()
        waiter.join(120)
        assert second.port is not None  # it starts once the first one stopped
    finally:
        first.stop()
        second.stop()


def test_two_commands_on_the_default_board_take_turns(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    models = {"example": "examples/example_model.npz", "digits": "examples/digits_mlp.npz"}
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "prune8_host.cli", "run", path, "--method", "magnitude",
         "--sparsity", "0.5", "-o", str(tmp_path / f"{name}.npz"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name, path in models.items()}
    results = {name: p.communicate(timeout=600) for name, p in procs.items()}
    for name, (out, err) in results.items():
        assert procs[name].returncode == 0, err
        assert json.loads(out)["verified"]
    assert sum("waiting for the virtual esp32 board" in err for _, err in results.values()) >= 1


def test_bytes_sent_at_another_rate_than_the_board_uses_arrive_as_noise():
    """The baud switch's emulation (pty_bridge.py): once the firmware set its UART's
    rate, bytes the host sends at another rate are line noise, those at the same rate
    arrive as sent, and a power-on puts the UART back to taking any rate."""
    rx = RxPath(0)
    rx.request(now=0.0, intr_char=-1)
    rx.receive(b"hello", now=0.0, host_rate=115200)
    rx.step(0.0)
    assert rx.take_for_vm(0.0) == b"hello"  # power-on: the UART takes the host's rate
    rx.set_rate(460800)
    rx.request(now=0.1, intr_char=-1)
    rx.receive(b"\x03\x04A", now=0.1, host_rate=115200)
    rx.step(0.1)
    noise = rx.take_for_vm(0.1)
    assert len(noise) == 3 and noise != b"\x03\x04A" and min(noise) >= 0x80
    rx.request(now=0.2, intr_char=-1)
    rx.receive(b"frame", now=0.2, host_rate=460800)
    rx.step(0.2)
    assert rx.take_for_vm(0.2) == b"frame"
    rx.reset()
    rx.request(now=0.3, intr_char=-1)
    rx.receive(b"ok", now=0.3, host_rate=115200)
    rx.step(0.3)
    assert rx.take_for_vm(0.3) == b"ok"


def test_a_rate_switch_paces_what_follows_and_keeps_what_was_queued():
    """Bytes queued before the board's UART changes rate leave at the old rate; after it,
    at the new one; and the host reads noise when its port is at another rate."""
    tx = TxPath(10000)  # 1 ms per byte
    tx.push(b"ab", now=0.0)
    tx.set_rate(100000)  # 0.1 ms per byte from now on
    tx.push(b"cdefghijkl", now=0.0)
    tx.step(0.0021, host_rate=10000)
    assert bytes(tx.pending) == b"ab"  # 2 ms: the old rate's two bytes, nothing more yet
    tx.step(0.0031, host_rate=100000)
    assert bytes(tx.pending) == b"abcdefghijkl"  # the ten fast bytes within the next 1 ms
    tx.pending.clear()
    tx.push(b"xy", now=0.01)
    tx.step(0.02, host_rate=10000)
    assert len(tx.pending) == 2 and bytes(tx.pending) != b"xy"


def test_a_timed_input_request_is_answered_empty_when_nothing_came():
    rx = RxPath(0)
    rx.request(now=1.0, intr_char=-1, timeout=0.5)
    assert rx.next_due(1.0) == 1.5
    assert not rx.expired(1.2)
    assert rx.expired(1.5) and not rx.waiting
    rx.request(now=2.0, intr_char=-1, timeout=0.5)
    rx.receive(b"z", now=2.1)
    rx.step(2.1)
    assert rx.take_for_vm(2.1) == b"z" and not rx.expired(3.0)
