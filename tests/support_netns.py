"""Running a program inside a network namespace that has only loopback.

WebRTC tests exchange media only here (ARCHITECTURE.md, "Testing WebRTC"): the namespace is
made by `unshare --net` for the one child process, has no interface but `lo`, and disappears
with it. Nothing in it can reach the machine's own address or any other.

aioice never offers loopback host candidates; `allow_loopback_candidates()` (called inside the
namespace, by test code only) makes it offer 127.0.0.1, the only address there is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def in_loopback_namespace(argv: Sequence[str], timeout: float, env: dict[str, str] | None = None,
                          ) -> subprocess.CompletedProcess[str]:
    """Runs argv in a fresh network namespace with `lo` up; returns the finished process."""
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    assert unshare is not None, "util-linux's unshare is needed for WebRTC tests"
    # As root (CI) a plain network namespace; otherwise a user namespace maps us to root in it.
    user_ns = [] if os.geteuid() == 0 else ["--map-root-user"]
    script = f'{ip} link set lo up && exec "$@"'
    return subprocess.run(
        [unshare, *user_ns, "--net", "--", "sh", "-c", script, "sh", *argv],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, **(env or {})}, check=False)


def python_in_loopback_namespace(module: str, *args: str, timeout: float,
                                 env: dict[str, str] | None = None,
                                 ) -> subprocess.CompletedProcess[str]:
    """Runs `python -m module args…` (this interpreter) in a loopback-only namespace."""
    return in_loopback_namespace([sys.executable, "-m", module, *args], timeout, env)


def allow_loopback_candidates() -> None:
    """Inside the namespace only: let aioice gather 127.0.0.1 as a host candidate."""
    import aioice.ice

    def loopback_only(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback_only  # type: ignore[assignment]


def assert_loopback_only() -> None:
    """Fails unless the only interface is `lo` (guards against running outside a namespace).

    Asks the kernel for this namespace's interfaces: /sys/class/net would list the host's, as
    sysfs shows the network namespace it was mounted in."""
    import socket

    interfaces = sorted(name for _, name in socket.if_nameindex())
    assert interfaces == ["lo"], f"not in a loopback-only namespace: {interfaces}"
