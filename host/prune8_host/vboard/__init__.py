"""The virtual board: a real MicroPython VM that mpremote reaches over a pseudo-terminal.

    from prune8_host.vboard import VirtualBoard
    with VirtualBoard(board="esp32", baud=0) as vb:
        ...  # mpremote connect vb.port ...

virtual_board.py holds VirtualBoard, which puts together pty_bridge.py (the pty and the
bridge thread), vm_process.py (the Node process running the VM) and flash_dir.py (the
locked flash directory); uart.py is the line model (pacing, bounded receive FIFO),
node.py finds Node.js and the pinned npm package, vboard.mjs is the VM side and
vm_init.py runs inside the VM at every boot.
"""

from prune8_host.errors import NodeSetupError, VirtualBoardError
from prune8_host.vboard.virtual_board import VirtualBoard

__all__ = ["VirtualBoard", "VirtualBoardError", "NodeSetupError"]
