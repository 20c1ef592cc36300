"""Network namespaces made by a test (root only): two workers, each in its own namespace,
joined to the test's namespace by a veth pair, so master and workers have different
addresses. Addresses are the test's own, inside the loopback-only namespace the suite runs
in (``unshare -n``): nothing here is routed anywhere else.

The reference target stays on the test's 127.0.0.1. Each worker reaches it on its own
127.0.0.1 through `LoopbackBridge`: a socket listening inside the worker's namespace whose
connections are relayed to the target, so the load still goes only to loopback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)


def usable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    if shutil.which("ip") is None:
        return "needs the ip tool (iproute2)"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    if [ln.split(":")[1].strip() for ln in links.splitlines()] != ["lo"]:
        return "runs only in a namespace with nothing but loopback (tests/loopback_only.py)"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _setns(fd: int) -> None:
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


@contextlib.contextmanager
def worker_namespaces(count: int) -> Iterator[tuple[str, list[str]]]:
    """(the master's address, the namespaces' names); every one deleted at the end."""
    tag = f"pb{os.getpid() % 100000}"
    names = [f"{tag}w{i}" for i in range(count)]
    master = "10.231.1.1"
    made: list[str] = []
    try:
        for i, name in enumerate(names, start=1):
            _ip("netns", "add", name)
            made.append(name)
            here, there = f"{tag}h{i}", f"{tag}n{i}"
            _ip("link", "add", here, "type", "veth", "peer", "name", there, "netns", name)
            _ip("addr", "add", f"10.231.{i}.1/30", "dev", here)
            _ip("link", "set", here, "up")
            _ip("-n", name, "addr", "add", f"10.231.{i}.2/30", "dev", there)
            _ip("-n", name, "link", "set", there, "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "route", "add", "default", "via", f"10.231.{i}.1")
        yield master, names
    finally:
        for name in made:  # deleting a namespace deletes its end of the veth, and so both
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


class LoopbackBridge:
    """127.0.0.1:``port`` inside namespace ``name`` relayed to 127.0.0.1:``port`` here."""

    def __init__(self, name: str, port: int) -> None:
        self.port = port
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(f"/run/netns/{name}", os.O_RDONLY)
        box: list[socket.socket] = []

        def listen() -> None:  # setns moves only the calling thread
            _setns(there)
            try:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen(64)
                box.append(s)
            finally:
                _setns(home)

        t = threading.Thread(target=listen)
        t.start()
        t.join()
        os.close(home)
        os.close(there)
        self.listener = box[0]
        self.closed = False
        self.open: set[socket.socket] = set()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                inside, _ = self.listener.accept()
            except OSError:
                return
            relay = threading.Thread(target=self._relay, args=(inside,), daemon=True)
            self.threads.append(relay)
            relay.start()

    def _relay(self, inside: socket.socket) -> None:
        with inside, socket.create_connection(("127.0.0.1", self.port)) as outside:
            self.open.update((inside, outside))
            back = threading.Thread(target=_pipe, args=(outside, inside), daemon=True)
            back.start()
            _pipe(inside, outside)
            back.join()
            self.open.difference_update((inside, outside))

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for s in list(self.open):  # their relays then end and close them
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(timeout=10)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
