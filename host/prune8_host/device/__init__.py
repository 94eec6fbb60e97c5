"""Everything that talks to a board: the serial link, sessions, transfers, building and
deploying the firmware, flashing, verifying, the on-board suite, and the workflow
operations (push, prune, pull, verify, evaluate) that commands and the study share."""
