"""Run a command in the current network namespace with its loopback interface up.

``make test`` runs pytest as ``unshare -n python tests/loopback_only.py PYTEST...`` when it
may (root): a new network namespace has only a loopback interface, and it starts down. So
no test can send anything anywhere but loopback, not even a name lookup, whatever the code
under test gets wrong.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import sys

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """``ip link set lo up`` without needing the ip tool."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


if __name__ == "__main__":
    loopback_up()
    os.execvp(sys.argv[1], sys.argv[1:])
