"""prune8 flash: write a stock MicroPython firmware onto a board with esptool, verify, reset."""

from __future__ import annotations

from prune8_host.boards import DEFAULT_BOARD, board_names, load_board


def register(sub) -> None:
    # One line of help per option at 80 columns: keep each under ~60 characters.
    p = sub.add_parser(
        "flash", help="flash MicroPython onto a board with esptool, verify, reset",
        description="Flash a stock MicroPython firmware .bin onto a board at its profile's "
                    "flash offset with esptool, verify the flash against the file and reset "
                    "the board. The file is checked (image magic, chip id, checksum) before "
                    "the port is opened.")
    p.add_argument("--port", required=True, metavar="PORT",
                   help="serial port or URL: /dev/ttyUSB0, socket://HOST:PORT")
    p.add_argument("--firmware", required=True, metavar="FILE",
                   help="MicroPython .bin for the board's chip (ESP32_GENERIC-*.bin)")
    p.add_argument("--board", default=DEFAULT_BOARD, metavar="NAME",
                   help=f"profile: {', '.join(board_names())} or a .toml "
                        f"(default {DEFAULT_BOARD})")
    p.add_argument("--erase", action="store_true",
                   help="erase the whole flash first (wipes the board's files)")
    p.add_argument("--baud", type=int, metavar="N",
                   help="write baud rate (default: the profile's flash_baud)")
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("--quiet", action="store_true",
                      help="print only errors: no progress bar, no summary")
    talk.add_argument("--verbose", action="store_true",
                      help="also show esptool's own messages above the bar")
    p.set_defaults(run=run)


def run(args) -> int:
    # Imported here so that other commands (and --help) do not load esptool.
    from prune8_host.device import flash
    from prune8_host.device.progress import TaskProgress

    profile = load_board(args.board)
    bar = TaskProgress(quiet=args.quiet)

    # esptool's chatter ("Connecting...", "Stub flasher running.") is shown only with
    # --verbose; its warnings unless --quiet, through the bar so they do not garble it.
    shown = {"warning", "error"} | ({"info", "note", "debug"} if args.verbose else set())

    def on_message(level: str, text: str) -> None:
        if level in shown:
            bar.write(f"esptool: {text}" if level == "info" else f"esptool {level}: {text}")

    # Refuse a bad file or baud rate before saying we are flashing.
    image = flash.check_image(args.firmware, profile)
    baud = flash.resolve_baud(profile, args.baud)
    if not args.quiet:
        print(f"flashing {args.firmware} ({len(image.data)} bytes, {image.chip_name} image) "
              f"to {args.port}: board {profile.name} at {profile.flash_offset:#x}, {baud} baud"
              f"{', erasing first' if args.erase else ''}", flush=True)
    try:
        report = flash.flash_firmware(args.port, args.firmware, profile, erase=args.erase,
                                      baud=baud, progress=bar,
                                      on_message=on_message)
    finally:
        bar.close()
    if not args.quiet:
        chip = report.chip_name + (" (the board profile's chip: the ROM did not identify "
                                   "itself)" if report.chip_source == "profile" else "")
        print(f"flashed {report.size} bytes (md5 {report.md5}) to {chip} at "
              f"{report.offset:#x}, verified against {args.firmware}, reset")
    return 0
