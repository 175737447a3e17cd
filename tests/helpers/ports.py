"""A free loopback port, for an app launched by a test or a benchmark."""

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
