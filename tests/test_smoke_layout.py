"""The two import packages of the distribution are importable side by side."""

import prune8
import prune8_host.twin


def test_firmware_and_twin_share_error_classes():
    assert prune8_host.twin.errors is prune8.errors
