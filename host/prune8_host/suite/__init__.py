"""The on-board test suite that `prune8 test-board` runs on a board: its MicroPython
scripts (scripts/, package data), the twin's golden vectors they check (golden) and the
runner that sends them and collects one result per case (runner)."""
