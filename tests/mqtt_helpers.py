"""Test helpers for the outbox and fault tests: a broker that keeps sessions,
a disk that fills up, certificates from the openssl CLI, and order checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Mosquitto keeps sessions and queued messages across a restart with these.
PERSISTENT_BROKER = (
    "persistence true\npersistence_location {dir}/\nmax_queued_messages 100000\n"
)


def persistent(directory: Path) -> str:
    return PERSISTENT_BROKER.format(dir=directory)


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``: a disk that really fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for a full-disk test needs root")
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of the file system that holds ``folder``."""
    filler = folder / "filler"
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(handle, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(handle)
    assert shutil.disk_usage(folder).free < 8192
    return filler


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def longest_decreasing_run(values: list[int]) -> int:
    """Length of the longest strictly decreasing subsequence.

    At most 2 means the values are a merge of two increasing sequences: the
    backlog draining in order beside the live events, each in order.
    """
    tails: list[int] = []
    for value in (-v for v in values):
        at = bisect_left(tails, value)
        if at == len(tails):
            tails.append(value)
        else:
            tails[at] = value
    return len(tails)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    days = ["-days", "2"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ca = ["-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=mask-edge test CA"]
    run("req", "-x509", *curve, *ca, *days)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    signed_by_ca = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"]
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=kiosk")):
        request = ["-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject]
        run("req", *curve, *request)
        certificate = ["-in", f"{name}.csr", "-out", f"{name}.crt", *days]
        run("x509", "-req", *certificate, *signed_by_ca, "-extfile", "san.ext")
    return {
        name: folder / name
        for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    }
