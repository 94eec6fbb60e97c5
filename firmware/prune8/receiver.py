# What every receiver on the board shares (docs/protocol.md, "Recovery"; docs/spec.md
# §12): Ctrl-C off while it runs (0x03 in the data is data), frames dispatched by a table
# of handlers, a frame delivered twice answered without being applied twice, and every
# failure sent to the host as an ERROR frame with its message.

from . import errors
from .link import Link
from .protocol import ABORT, BAUD, REPLY
from .store import oserror_text

try:
    import micropython
except ImportError:  # CPython
    micropython = None

INTERRUPT_CHAR = 3  # MicroPython's default Ctrl-C; restored when a receiver returns


def kbd_intr(ch):
    if micropython is not None and hasattr(micropython, "kbd_intr"):
        micropython.kbd_intr(ch)


def error_text(e, doing):
    """The one line the host shows for a failed request."""
    if isinstance(e, OSError):
        return oserror_text(e, doing)
    return "%s: %s" % (type(e).__name__, e)


class Receiver:
    """Answers frames until a handler ends it (`self.done = True`).

    A subclass fills `self.handlers` {frame type: method(payload)} in __init__ and may
    override start() (set-up that can fail) and close() (always run at the end). A
    handler returns None (answered ACK) or a buffer (answered REPLY with it). Types in
    `replayed` are requests that only read, answered again when delivered twice; any
    other frame delivered twice is acknowledged without being applied again. A failed
    handler is answered with an ERROR frame; unless `keep_going`, the receiver then
    applies nothing more, answers every frame with the same ERROR and waits for the
    host's ABORT, so that no frame the host had in flight reaches the REPL. A failed start() is reported as
    the answer to the first frame, the same way.

    ABORT ends every receiver in every state, whatever its seq: a new host session
    starts with one (seq 0) to end a receiver its killed predecessor left running, and
    that receiver's last good frame may well have had seq 0 too.
    """

    doing = "receiving"     # for messages: "... while saving the model"
    keep_going = False
    replayed = ()

    def __init__(self, link=None):
        self.link = link if link is not None else Link()
        self.handlers = {}
        self.done = False
        self.baud = None    # baud.Switch, once the host asks for a faster line

    def start(self):
        pass

    def close(self):
        pass

    def serve(self):
        link = self.link
        kbd_intr(-1)
        try:
            failed = None
            try:
                self.start()
            except Exception as e:  # told to the host when it sends its first frame
                failed = error_text(e, self.doing)
            while not self.done:
                t = link.recv()
                if t == ABORT:  # before the duplicate check: see the docstring
                    link.ok()
                    return
                if t == BAUD:  # the line's rate, in every state (docs/protocol.md)
                    if self.baud is None:
                        from .baud import Switch
                        self.baud = Switch(link)
                    self.baud.handle(link.payload())
                    continue
                if failed is not None:
                    link.error(failed)  # every frame after a failure, until the ABORT
                    continue
                if link.duplicate and t not in self.replayed:
                    link.ok()
                    continue
                handler = self.handlers.get(t)
                try:
                    if handler is None:
                        raise errors.unexpected_frame(t, self.doing)
                    reply = handler(link.payload())
                except Exception as e:  # reported to the host, which raises it there
                    text = error_text(e, self.doing)
                    link.error(text)
                    if not self.keep_going:
                        failed = text
                    continue
                if reply is None:
                    link.ok()
                else:
                    link.send(REPLY, reply)
        finally:
            try:
                self.close()
            finally:
                if self.baud is not None:
                    self.baud.restore()  # the REPL answers at the host's rate again
                kbd_intr(INTERRUPT_CHAR)
