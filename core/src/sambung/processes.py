"""Helper processes that must never outlive the daemon that started them."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """Have the kernel SIGKILL this process when `parent` dies, even by SIGKILL.

    A helper holds copies of the daemon's descriptors (its listening sockets among them, for a
    forked one): left running, it would keep a restarted daemon from binding its port or
    writing its store. Linux only (prctl); elsewhere the helper still ends at its next read or
    write on its closed pipe.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
