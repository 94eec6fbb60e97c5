"""What the tests share and the product does not ship: the MicroPython unix port as a
second board (unix_port), and helpers used by several test modules."""
