"""Everything that talks to a board: the serial link, sessions, transfers, building and
deploying the firmware, flashing, verifying, and the workflow operations (push, prune,
pull, verify, evaluate) that the commands and the studies share."""
