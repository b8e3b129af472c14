"""What the run records of its machine: facts that change what a measurement means."""

import pandas as pd
import pytest

from eagerbench.records import host
from eagerbench.report.pages import run as runpage


def _virtio(root, name: str, device: str, features: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "device").write_text(device + "\n")
    (folder / "features").write_text(features + "\n")


@pytest.mark.parametrize("devices, reporting", [
    ([("virtio0", "0x0005", "0110010100000000")], True),     # a balloon that reports
    ([("virtio0", "0x0005", "0110000100000000")], False),    # a balloon that does not
    ([("virtio1", "0x0001", "0000010000000000")], False),    # a network card's bit 5
    ([], False),
])
def test_free_page_reporting_is_read_from_the_vms_balloon(tmp_path, devices, reporting):
    """This project's VM reports freed memory to its host: jax's 1 GiB add then took 330 ms in
    most calls and up to 1.9 s in some, all of it the kernel's faults."""
    for device in devices:
        _virtio(tmp_path, *device)
    assert host.free_page_reporting(tmp_path) is reporting


def test_the_report_says_when_freed_memory_goes_back_to_the_host():
    env = {"allocator": {"env": {}, "transparent_hugepages": "madvise",
                         "free_page_reporting": True}}
    assert "free page reporting on" in runpage.machine(env, pd.DataFrame())
    env["allocator"]["free_page_reporting"] = False
    assert "free page reporting" not in runpage.machine(env, pd.DataFrame())
