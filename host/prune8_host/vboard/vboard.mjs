// The board side of prune8's virtual ESP32: one MicroPython WebAssembly VM (the npm
// package @micropython/micropython-webassembly-pyscript, pinned by package-lock.json)
// driven the way an ESP32 port's main.c drives pyexec.
//
// Started by prune8_host/vboard/vm_process.py; the bridge thread (pty_bridge.py) owns
// the pseudo-terminal, the UART pacing and the bounded receive FIFO. This process only
// ever blocks in one place: when the VM wants input (the REPL is idle, or running code
// reads sys.stdin) it sends "R <interrupt char>" on the control pipe and reads one
// frame from stdin:
// "D" + uint16 LE length + bytes; a zero-length frame is a wake-up (a Ctrl-C arrived).
// Everything the VM prints goes to stdout. Other control lines: "I <char>" when the
// interrupt char changes (micropython.kbd_intr, pyexec), "U <n>" when the VM may stay
// away for a while with n bytes of the last frame still unread (so the bridge knows
// how full the board's receive buffer really is), "RUN <script>" before boot.py and
// main.py, "BOOTED" when a prompt is up.
// A Ctrl-C that the bridge's "UART ISR" took as an interrupt arrives as a byte on the
// (non-blocking) interrupt pipe; it is acted on while code runs.
//
// The whole program is synchronous on purpose: the VM calls the stdin callback from
// inside running code and needs its byte before it can continue. stdin EOF (the
// bridge went away) ends the process.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const cfg = JSON.parse(process.argv[2]);
// cfg: { mpy, vmInit, flash, ctrlFd, intrFd, sysname, machine, version, heapBytes,
//        flashBytes (null: no limit), flashEraseUs, flashProgramUs, cpuFactor }
// The last three make the board as slow as the profile's (0, 0, 1: as fast as it runs).

const FLASH = "/flash"; // MEMFS directory that the board's "/" shows
const TMP_PREFIX = ".vboard-tmp-"; // host-side temp files of atomic writes
const CTRL_A = 0x01, CTRL_B = 0x02, CTRL_C = 0x03, CTRL_D = 0x04, CTRL_E = 0x05;
const RAW_BANNER = "raw REPL; CTRL-B to exit\r\n";
// pyexec's raw-paste window: MICROPY_REPL_STDIN_BUFFER_MAX, 256 on the ESP32 ports
const PASTE_WINDOW = 256;
const SECTOR = 4096; // flash erase unit, and LittleFS's block on the ESP32
const PAGE = 256; // flash program unit
const O_ACCMODE = 3; // Emscripten open flags: O_WRONLY = 1, O_RDWR = 2

// ---------------------------------------------------------------- pipes to the bridge

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms) {
    Atomics.wait(sleepCell, 0, 0, ms);
}

// ---------------------------------------------------------------- a real board's slowness

// CPU: while code runs (runCode), the process's CPU time since the last mark is
// stretched by cpuFactor (sleeping the difference) before the board is next seen from
// outside: before it asks for input or sends output, before a flash write, and when
// the code ends. Process CPU time, not wall time, so a busy host does not make the board
// slower still; only while code runs, so the REPL's byte-by-byte glue in this file is
// not counted as the board's work. Off until the first prompt.
let timingOn = false;
let running = false;
let cpuMark = process.cpuUsage();
let vmCpuUs = 0; // CPU time of the code so far, glue excluded, not yet stretched
let glueDepth = 0; // glue calls in progress (a filesystem hook may call the stdin one)
function stretchCpu(last = false) {
    if (!timingOn || !running || !(cfg.cpuFactor > 1)) return;
    if (glueDepth === 0) {  // inside glue, the code's time was taken at glueStart
        const used = process.cpuUsage(cpuMark);
        vmCpuUs += used.user + used.system;
    }
    const us = vmCpuUs * (cfg.cpuFactor - 1);
    // Under a millisecond is carried to the next stretch, not dropped: a board that does
    // a little work between each of many reads is slow by all of it.
    if (us >= 1000 || (last && us > 0)) {
        sleepMs(us / 1000);
        vmCpuUs = 0;
    }
    cpuMark = process.cpuUsage();
}

// The stdin and stdout callbacks run once per byte: their JavaScript is this file's
// glue, not the board's work (a board's UART driver moves bytes in C), so it is left
// out of the CPU time that is stretched. Only the outermost of nested glue calls takes
// the code's time so far: each nested one would count it again.
function glueStart() {
    if (glueDepth++ > 0 || !running) return;
    const used = process.cpuUsage(cpuMark);
    vmCpuUs += used.user + used.system;
}

function glueEnd() {
    if (--glueDepth === 0 && running) cpuMark = process.cpuUsage();
}

function runCode(fn) {
    cpuMark = process.cpuUsage();
    vmCpuUs = 0;
    running = true;
    try {
        return fn();
    } finally {
        stretchCpu(true);
        running = false;
    }
}

// A write of `length` bytes at file offset `at` that took the file from `before` to
// `after` bytes. Appending erases each 4 KB sector the file grows into and programs the
// pages written. LittleFS keeps a file as a list of blocks that point back to earlier
// ones, so a write that starts before the file's end cannot change a block in place:
// every block from the one holding `at` to the file's end is copied to fresh blocks
// (erased and programmed) when the file is next flushed, and that copy is charged here.
function flashDelay(length, at, before, after) {
    if (!timingOn || !(cfg.flashEraseUs > 0 || cfg.flashProgramUs > 0)) return;
    stretchCpu();
    let sectors, pages;
    if (at < before) {
        const first = Math.floor(at / SECTOR) * SECTOR;
        const end = Math.max(before, after);
        sectors = Math.ceil(end / SECTOR) - first / SECTOR;
        pages = Math.ceil((end - first) / PAGE);
    } else {
        sectors = Math.max(0, Math.ceil(after / SECTOR) - Math.ceil(before / SECTOR));
        pages = Math.ceil(length / PAGE);
    }
    const us = sectors * cfg.flashEraseUs + pages * cfg.flashProgramUs;
    if (us > 0) sleepMs(us / 1000);
    cpuMark = process.cpuUsage();
}

function writeAll(fd, buf) {
    let off = 0;
    while (off < buf.length) {
        try {
            off += fs.writeSync(fd, buf, off, buf.length - off);
        } catch (e) {
            if (e.code === "EAGAIN") {
                sleepMs(1);
                continue;
            }
            if (e.code === "EPIPE") process.exit(0); // the bridge is gone
            throw e;
        }
    }
}

function readFully(fd, buf) {
    let off = 0;
    while (off < buf.length) {
        let n;
        try {
            n = fs.readSync(fd, buf, off, buf.length - off, null);
        } catch (e) {
            if (e.code === "EAGAIN") {
                sleepMs(1);
                continue;
            }
            throw e;
        }
        if (n === 0) process.exit(0); // EOF: the bridge (our parent) is gone
        off += n;
    }
}

function ctrl(line) {
    writeAll(cfg.ctrlFd, Buffer.from(line + "\n", "latin1"));
}

function log(msg) {
    writeAll(2, Buffer.from(`vboard.mjs: ${msg}\n`));
}

// ---------------------------------------------------------------- VM output

// Output is gathered and written when a print() finishes (see the FS.write hook), before
// blocking for input, and when it grows large. While `capture` is set (Ctrl-A/Ctrl-B
// replies) it is held back so the banner can be inspected and rewritten first.
let out = Buffer.alloc(16384);
let outLen = 0;
let capture = false;
let mute = false;
let lastOut = -1; // last byte the VM printed
let fedSinceOut = []; // bytes fed to the REPL since the VM last printed
let outCount = 0;

function emit(b) {
    if (outLen === out.length) {
        if (!capture) {
            flush();
        } else {
            const bigger = Buffer.alloc(out.length * 2);
            out.copy(bigger, 0, 0, outLen);
            out = bigger;
        }
    }
    out[outLen++] = b;
}

function emitStr(s) {
    for (const b of Buffer.from(s, "latin1")) emit(b);
}

function flush() {
    if (outLen > 0) {
        stretchCpu();
        writeAll(1, out.subarray(0, outLen));
        outLen = 0;
    }
}

// Rewrite what the VM printed since `start` (latin1 text in, latin1 text out).
function rewriteSince(start, fn) {
    const text = fn(out.subarray(start, outLen).toString("latin1"));
    outLen = start;
    emitStr(text);
}

function onVmOutput(bytes) {
    glueStart();
    try {
        vmOutput(bytes);
    } finally {
        glueEnd();
    }
}

function vmOutput(bytes) {
    for (const b of bytes) {
        if (dropOk > 0 && b === "OK".charCodeAt(2 - dropOk)) {
            dropOk--; // "OK": see rawPaste()
            continue;
        }
        dropOk = 0;
        if (!mute) emit(b);
    }
    lastOut = bytes[bytes.length - 1];
    fedSinceOut.length = 0;
    noteIntr();
    // A long print() is one write; look for a Ctrl-C now and then while it lasts.
    if (++outCount % 256 === 0) pollInterrupt();
}

// ---------------------------------------------------------------- VM input

let vm = null; // the object loadMicroPython() returns
let M = null; // its Emscripten module
let lastIntr = -2; // interrupt char last reported to the bridge
let inBuf = Buffer.alloc(0);
let inPos = 0;
let lastUnread = 0; // unread bytes of the last frame, as last told to the bridge
const header = Buffer.alloc(3);
const intrBuf = Buffer.alloc(64);

function noteIntr() {
    const c = M._mp_hal_get_interrupt_char();
    if (c !== lastIntr) {
        lastIntr = c;
        ctrl(`I ${c}`);
    }
}

// Take interrupt tokens from the bridge. While code runs with an interrupt char set,
// schedule KeyboardInterrupt, as the ESP32's UART ISR does; otherwise (the program that
// was meant has already finished) drop them. Returns true when one was scheduled.
function pollInterrupt() {
    let got = false;
    for (;;) {
        let n;
        try {
            n = fs.readSync(cfg.intrFd, intrBuf, 0, intrBuf.length, null);
        } catch (e) {
            if (e.code === "EAGAIN") break;
            throw e;
        }
        if (n === 0) break;
        got = true;
    }
    if (got && M._mp_hal_get_interrupt_char() !== -1) {
        M._mp_sched_keyboard_interrupt();
        return true;
    }
    return false;
}

// Ask the bridge for bytes and block until a frame arrives.
function request(atRepl) {
    flush();
    stretchCpu();
    lastIntr = M._mp_hal_get_interrupt_char();
    ctrl(`R ${lastIntr}`);
    readFully(0, header);
    const len = header.readUInt16LE(1);
    const data = Buffer.alloc(len);
    readFully(0, data);
    if (atRepl) {
        // Any interrupt token still queued belongs to a program that has finished.
        pollInterrupt();
    }
    inBuf = data;
    inPos = 0;
    lastUnread = data.length;
}

// Tell the bridge how much of the last frame is still unread, before the VM may go off
// and run code: until the VM asks again, those bytes occupy the receive FIFO.
function reportUnread() {
    const n = inBuf.length - inPos;
    if (n !== lastUnread) {
        lastUnread = n;
        ctrl(`U ${n}`);
    }
}

// The next byte for the REPL (no code is running).
function replByte() {
    while (inPos >= inBuf.length) request(true);
    return inBuf[inPos++];
}

// The UART hooks the firmware's baud switch calls (prune8/baud.py, through the
// vboard_uart module vm_init.py installs): set the UART's rate, once what was printed
// has left; wait at most ms for input (true: a byte is there).
function uartRate(rate) {
    flush();
    ctrl(`B ${rate}`);
}

function uartReady(ms) {
    if (inPos < inBuf.length) return true;
    flush();
    stretchCpu();
    lastIntr = M._mp_hal_get_interrupt_char();
    ctrl(`T ${lastIntr} ${Math.max(0, Math.round(ms))}`);
    readFully(0, header);
    const data = Buffer.alloc(header.readUInt16LE(1));
    readFully(0, data);
    inBuf = data;
    inPos = 0;
    lastUnread = data.length;
    return data.length > 0;
}

globalThis.vboardUart = { rate: uartRate, ready: uartReady };

// The VM's stdin callback: running code reads sys.stdin. null ends the read early
// (used when a KeyboardInterrupt has been scheduled, so the code gets to raise it).
function onVmStdin() {
    glueStart();
    try {
        return vmStdin();
    } finally {
        glueEnd();
    }
}

function vmStdin() {
    noteIntr();
    if (pollInterrupt()) return null;
    for (;;) {
        if (inPos < inBuf.length) return inBuf[inPos++];
        request(false);
        if (inPos >= inBuf.length && pollInterrupt()) return null;
    }
}

// ---------------------------------------------------------------- flash persistence

// The host file for a VM path; some syscalls (rmdir) hand over paths relative to the
// Emscripten cwd, which VfsPosix keeps inside /flash.
function hostPath(FS, memPath) {
    const p = path.posix.resolve(FS.cwd(), memPath);
    if (p === FLASH) return cfg.flash;
    if (p.startsWith(FLASH + "/")) {
        return path.join(cfg.flash, ...p.slice(FLASH.length + 1).split("/"));
    }
    return null;
}

// Write a whole file so that a crash or reset at any moment leaves either the old or
// the new contents, never a torn file: temp file in the same directory, then rename.
function writeAtomic(host, data) {
    const tmp = path.join(path.dirname(host), `${TMP_PREFIX}${process.pid}-${path.basename(host)}`);
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, host);
}

function loadFlash(FS) {
    FS.mkdir(FLASH);
    const walk = (host, mem) => {
        for (const ent of fs.readdirSync(host, { withFileTypes: true })) {
            const h = path.join(host, ent.name);
            const m = `${mem}/${ent.name}`;
            if (ent.name.startsWith(TMP_PREFIX)) {
                // Left by a write that a hard reset cut short: the old file is intact.
                fs.rmSync(h, { force: true });
            } else if (ent.isDirectory()) {
                FS.mkdir(m);
                walk(h, m);
            } else if (ent.isFile()) {
                FS.writeFile(m, fs.readFileSync(h));
                const st = fs.statSync(h);
                FS.utime(m, st.mtimeMs, st.mtimeMs);
            } // symlinks, sockets etc. have no counterpart on a board's flash
        }
    };
    walk(cfg.flash, FLASH);
}

// Hook the Emscripten FS (the only filesystem compiled into this VM) so that every
// change under /flash reaches the host directory: file contents when a file opened for
// writing is closed or flushed, directory entries at once. The same wrappers translate
// Emscripten errno numbers (ENOENT is 44 there) into MicroPython's (ENOENT is 2), at the
// outermost call only, i.e. where the VM's syscalls see them, because Emscripten's own
// FS code compares errno numbers internally.
function installFsHooks(FS, errnoMap) {
    const orig = {};
    let depth = 0;

    // A board's flash partition is finite: past cfg.flashBytes of file contents under
    // /flash a write fails with ENOSPC, as littlefs does when the partition is full.
    const flashUsed = () => {
        let total = 0;
        const walk = (dir) => {
            for (const name of orig.readdir(dir)) {
                if (name === "." || name === "..") continue;
                const node = orig.lookupPath(`${dir}/${name}`).node;
                if (FS.isDir(node.mode)) walk(`${dir}/${name}`);
                else total += node.usedBytes || 0;
            }
        };
        walk(FLASH);
        return total;
    };
    const checkSpace = (stream, length, position) => {
        if (cfg.flashBytes == null || hostPath(FS, FS.getPath(stream.node)) === null) return;
        const node = stream.node;
        const start = (stream.flags & 0o2000) ? node.usedBytes  // O_APPEND
            : (position ?? stream.position);
        const growth = Math.max(0, start + length - (node.usedBytes || 0));
        if (growth && flashUsed() + growth > cfg.flashBytes) {
            throw new FS.ErrnoError(emErrno.ENOSPC);
        }
    };

    const isWriter = (stream) => (stream.flags & O_ACCMODE) !== 0 && FS.isFile(stream.node.mode);

    const persistNode = (node) => {
        const memPath = FS.getPath(node);
        const host = hostPath(FS, memPath);
        if (host === null) return;
        try {
            // A file unlinked while still open must not come back.
            if (orig.lookupPath(memPath).node !== node) return;
        } catch (e) {
            return;
        }
        const data = node.contents ? node.contents.subarray(0, node.usedBytes) : new Uint8Array(0);
        try {
            writeAtomic(host, data);
        } catch (e) {
            log(`cannot write ${host}: ${e.message}`);
        }
    };

    const mirror = (what, fn) => {
        try {
            fn();
        } catch (e) {
            if (e.code !== "ENOENT" && e.code !== "EEXIST") log(`cannot ${what}: ${e.message}`);
        }
    };

    const after = {
        close([stream]) {
            if (isWriter(stream)) persistNode(stream.node);
        },
        read([stream]) {
            // Code read from stdin and may now compute for a while.
            if (FS.isChrdev(stream.node.mode)) reportUnread();
        },
        write([stream]) {
            // The end of a print(): let the bridge have the text now, as a UART would,
            // and see whether a Ctrl-C came in meanwhile.
            if (FS.isChrdev(stream.node.mode)) {
                if (!capture) flush();
                pollInterrupt();
            }
        },
        mkdir([p]) {
            const h = hostPath(FS, p);
            if (h) mirror(`mkdir ${h}`, () => fs.mkdirSync(h));
        },
        rmdir([p]) {
            const h = hostPath(FS, p);
            if (h) mirror(`rmdir ${h}`, () => fs.rmdirSync(h));
        },
        unlink([p]) {
            const h = hostPath(FS, p);
            if (h) mirror(`unlink ${h}`, () => fs.unlinkSync(h));
        },
        rename([from, to]) {
            const hf = hostPath(FS, from), ht = hostPath(FS, to);
            if (!hf || !ht) return;
            try {
                fs.renameSync(hf, ht);
            } catch (e) {
                // Renamed before it was ever closed: write what it holds now.
                if (e.code === "ENOENT") persistNode(orig.lookupPath(to).node);
                else log(`cannot rename ${hf} -> ${ht}: ${e.message}`);
            }
        },
    };

    const names = ["open", "close", "read", "write", "llseek", "stat", "lstat", "fstat", "mkdir",
        "rmdir", "unlink", "rename", "readdir", "statfs", "chdir", "lookupPath", "getStreamChecked",
        "truncate", "ftruncate", "utime", "chmod", "fchmod", "readlink"];
    for (const name of names) {
        if (typeof FS[name] !== "function") continue;
        const fn = (orig[name] = FS[name]);
        const hook = after[name];
        FS[name] = function (...args) {
            if (depth === 0) glueStart();
            depth++;
            let result;
            let flashBefore = -1;
            let flashAt = 0;
            try {
                if (name === "write" && depth === 1) {
                    checkSpace(args[0], args[3], args[4]);
                    if (hostPath(FS, FS.getPath(args[0].node)) !== null) {
                        flashBefore = args[0].node.usedBytes || 0;
                        // FS.write(stream, buffer, offset, length, position): no position,
                        // the stream's own
                        flashAt = typeof args[4] === "number" ? args[4] : args[0].position;
                    }
                }
                result = fn.apply(FS, args);
            } catch (e) {
                if (depth === 1 && e && e.name === "ErrnoError" && errnoMap.has(e.errno)) {
                    throw new FS.ErrnoError(errnoMap.get(e.errno));
                }
                throw e;
            } finally {
                depth--;
                if (depth === 0) glueEnd();
            }
            if (flashBefore >= 0) {
                flashDelay(args[3], flashAt, flashBefore, args[0].node.usedBytes || 0);
            }
            if (hook && depth === 0) {
                glueStart();
                try {
                    hook(args, result);
                } finally {
                    glueEnd();
                }
            }
            return result;
        };
    }

    // f.flush() reaches fsync(), which Emscripten forwards to stream_ops.fsync when
    // there is one. MEMFS files share one stream_ops object: give it that hook.
    const probe = "/tmp/.vboard-probe";
    const probeStream = orig.open(probe, 0o101); // O_CREAT | O_WRONLY
    probeStream.node.stream_ops.fsync = (stream) => {
        if (isWriter(stream)) persistNode(stream.node);
        return 0;
    };
    orig.close(probeStream);
    orig.unlink(probe);

    // What a board's soft reset does to files still open for writing: gc_sweep_all()
    // runs their finalisers, which close them.
    return function persistOpenFiles() {
        for (const [, stream] of FS.streams.entries()) {
            if (stream && isWriter(stream)) persistNode(stream.node);
        }
    };
}

// Emscripten's errno numbers, read from the pinned package itself.
function emscriptenErrnoCodes(mpyPath) {
    const src = fs.readFileSync(mpyPath, "latin1");
    const m = /ERRNO_CODES=\{([^}]*)\}/.exec(src);
    if (!m) {
        throw new Error(`no ERRNO_CODES table in ${mpyPath}: not the pinned MicroPython package?`);
    }
    const codes = {};
    for (const item of m[1].split(",")) {
        const [name, num] = item.split(":");
        codes[name] = Number(num);
    }
    return codes;
}

// Emscripten number -> MicroPython number, by name: the VM's own errno module first;
// names it lacks (ENOTEMPTY, ...) get the Linux number, which is what the ESP32's
// littlefs driver reports for them (rmdir of a non-empty directory: OSError 39).
function buildErrnoMap(emscripten, micropython) {
    const linux = process.platform === "linux" ? os.constants.errno : {};
    const map = new Map();
    for (const [name, em] of Object.entries(emscripten)) {
        const mp = micropython[name] ?? linux[name];
        if (mp !== undefined && mp !== em) map.set(em, mp);
    }
    return map;
}

// ---------------------------------------------------------------- the board

let loadMicroPython = null;
let emErrno = null;
let errnoMap = null;
let vmInitSrc = null;
let vmBanner = null; // the banner line the VM prints, "MicroPython v...; JS with Emscripten"
let boardBanner = null; // the one an ESP32 prints instead
let rawMode = false; // pyexec's mode, as the VM's own replies to Ctrl-A / Ctrl-B show it
let persistOpenFiles = () => {};

function py(code) {
    return vm.runPython(code);
}

// Start a fresh interpreter: what a soft reset's mp_deinit()/mp_init() or a power-on
// gives. A new instance of the module is the only way to get one from this package.
async function newVm() {
    vm = await loadMicroPython({
        stdin: onVmStdin,
        stdout: onVmOutput,
        stderr: onVmOutput,
        linebuffer: false,
        heapsize: cfg.heapBytes,
    });
    M = vm._module;
    lastIntr = -2;
    noteIntr();
    loadFlash(vm.FS);
    py(`exec(compile(${JSON.stringify(vmInitSrc)}, "<vboard>", "exec"))`);
    const version = cfg.version ? `(${cfg.version.join(",")},)` : "None";
    py(`_vboard_info = _vboard_setup(${JSON.stringify(FLASH)}, ${JSON.stringify(cfg.sysname)}, ` +
        `${JSON.stringify(cfg.machine)}, ${version}, ` +
        `${cfg.flashBytes == null ? "None" : Number(cfg.flashBytes)})`);
    const info = JSON.parse(vm.globals.get("_vboard_info"));
    vmBanner = info.vm_banner;
    boardBanner = info.board_banner;
    errnoMap ??= buildErrnoMap(emErrno, info.errno);
    persistOpenFiles = installFsHooks(vm.FS, errnoMap);
}

// Run boot.py / main.py from the flash; true when the script asked for a soft reset.
function runScript(name) {
    flush();
    ctrl(`RUN ${name}`);
    try {
        py(`_vboard_status = _vboard_run(${JSON.stringify(name)})`);
        return vm.globals.get("_vboard_status") === 1;
    } catch (e) {
        log(`running ${name}: ${e.message}`);
        return false;
    }
}

function forgetHelpers() {
    py("for _n in [n for n in globals() if n.startswith('_vboard')]:\n del globals()[_n]\ndel _n");
}

function fixBanner(text) {
    return text.split(vmBanner).join(boardBanner);
}

// What main.c does from soft_reset: to the REPL: fresh VM, boot.py, main.py (friendly
// mode only), then the REPL in the mode the previous one was in.
async function boot() {
    for (;;) {
        await newVm();
        runScript("boot.py");
        if (!rawMode && runScript("main.py")) {
            persistOpenFiles();
            emitStr("MPY: soft reboot\r\n");
            continue;
        }
        break;
    }
    forgetHelpers();
    const start = outLen;
    capture = true;
    if (rawMode) {
        // pyexec starts in friendly mode; switch it to raw without the friendly banner,
        // and without the "\r\n" pyexec prints when switching (a board entering raw REPL
        // after a soft reset prints the raw banner alone).
        mute = true;
        vm.replInit();
        mute = false;
        vm.replProcessChar(CTRL_A);
        rewriteSince(start, (t) => t.replace(/^\r\n/, ""));
    } else {
        vm.replInit();
        rewriteSince(start, (t) => fixBanner(t.replace(/^\r\n/, "")));
    }
    capture = false;
    flush();
    ctrl("BOOTED");
    timingOn = true;
    cpuMark = process.cpuUsage();
}

async function softReset() {
    persistOpenFiles();
    emitStr("MPY: soft reboot\r\n");
    await boot();
}

// Raw-paste mode, as pyexec's blocking raw REPL runs it on an ESP32 (MicroPython >= 1.14):
// after Ctrl-E 'A' Ctrl-A at the raw prompt, answer "R\x01" and the window size (u16 LE),
// take the code byte by byte, sending \x01 each time a window's worth has been taken
// (the host never has more than the window unread), until Ctrl-D (end: answer \x04, then
// run it) or Ctrl-C (answer \x04 and raise KeyboardInterrupt). The VM's own raw REPL
// cannot do this (its reader gets constant zeros from mp_hal_stdin_rx_chr()), so the code
// is collected here and then fed to the raw REPL, with the "OK" it prints first removed:
// in raw-paste mode the \x04 above takes its place.
let dropOk = 0; // bytes of "OK" still to remove from the VM's output
function rawPaste() {
    emitStr("R\x01");
    emit(PASTE_WINDOW & 0xff);
    emit(PASTE_WINDOW >> 8);
    flush();
    const code = [];
    let remain = PASTE_WINDOW;
    let interrupted = false;
    for (;;) {
        const c = replByte();
        if (c === CTRL_D || c === CTRL_C) {
            interrupted = c === CTRL_C;
            break;
        }
        code.push(c);
        if (--remain === 0) {
            emit(0x01);
            flush();
            remain = PASTE_WINDOW;
        }
    }
    emit(0x04);
    flush();
    const run = interrupted ? Buffer.from("raise KeyboardInterrupt", "latin1") : code;
    let ret = 0;
    for (const b of run) vm.replProcessChar(b);
    dropOk = 2;
    reportUnread();
    ret = runCode(() => vm.replProcessChar(CTRL_D));
    dropOk = 0;
    noteIntr();
    return ret;
}

// Feed one byte to pyexec's event-driven REPL; returns its result (non-zero: soft reset).
function feed(c) {
    if (c === CTRL_E && rawMode && lastOut === 0x3e && fedSinceOut.length === 0) {
        const a = replByte();
        if (a !== 0x41) return feedAll([c, a]);
        const b = replByte();
        return b === CTRL_A ? rawPaste() : feedAll([c, a, b]);
    }
    return feed1(c);
}

// Bytes that only looked like the start of a raw-paste request: the REPL's as they came.
function feedAll(bytes) {
    for (const b of bytes) {
        const ret = feed1(b);
        if (ret !== 0) return ret;
    }
    return 0;
}

function feed1(c) {
    if (fedSinceOut.length < 3) fedSinceOut.push(c);
    // Bytes on which pyexec runs code: Ctrl-D (raw REPL, paste mode), Enter (friendly).
    if (c === CTRL_D || (!rawMode && (c === 0x0d || c === 0x0a))) reportUnread();

    const watch = c === CTRL_A || c === CTRL_B;
    const start = outLen;
    if (watch) capture = true;
    const runs = c === CTRL_D || (!rawMode && (c === 0x0d || c === 0x0a));
    const ret = runs ? runCode(() => vm.replProcessChar(c)) : vm.replProcessChar(c);
    if (watch) {
        capture = false;
        const text = out.subarray(start, outLen).toString("latin1");
        if (c === CTRL_A && text.includes(RAW_BANNER)) rawMode = true;
        if (c === CTRL_B && text.includes(vmBanner)) {
            rawMode = false;
            rewriteSince(start, fixBanner);
        }
    }
    noteIntr();
    return ret;
}

async function main() {
    ({ loadMicroPython } = await import(pathToFileURL(cfg.mpy).href));
    emErrno = emscriptenErrnoCodes(cfg.mpy);
    vmInitSrc = fs.readFileSync(cfg.vmInit, "utf8");
    await boot();
    for (;;) {
        if (feed(replByte()) !== 0) await softReset();
    }
}

main().catch((e) => {
    log(e && e.stack ? e.stack : String(e));
    process.exit(70);
});
