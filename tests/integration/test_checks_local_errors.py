"""A director out of file descriptors gives no verdict, for real (RLIMIT_NOFILE in a subprocess).

The child lowers its own descriptor limit, so the test process is never short of descriptors.
Loopback 127.0.0.38 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SRC = str(Path(__file__).resolve().parents[2] / "src")

CHILD = r"""
import asyncio, errno, json, logging, os, resource
from ipvswm.checks.checker import Checker
from ipvswm.checks.probe import PreparedCheck
from ipvswm.config.model import CheckKind, CheckSpec, CheckTarget

records = []

class Keep(logging.Handler):
    def emit(self, record):
        records.append([record.levelname, record.getMessage()])

logging.getLogger("ipvswm").addHandler(Keep())
logging.getLogger("ipvswm").setLevel(logging.INFO)
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))  # cheap to use up

async def until(condition):
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.005)  # polls a condition (bounded), no readiness guess

async def main():
    async def answer(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.38", 0)
    port = server.sockets[0].getsockname()[1]
    results = []
    spec = CheckSpec(CheckKind.HTTP, path="/fd", interval=0.02, rise=1, fall=1)
    checker = Checker(CheckTarget("127.0.0.38", port, spec), results.append)
    checker.start()
    await until(lambda: results)
    hog = []
    try:
        while True:
            hog.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        assert exc.errno == errno.EMFILE
    before = len(results)
    await until(lambda: checker.local_errors >= 5)
    tls = CheckTarget("127.0.0.38", port, CheckSpec(CheckKind.HTTPS, path="/fd"))
    https = await PreparedCheck(tls).run()  # the transport path, short of descriptors too
    during = len(results) - before
    for fd in hog:
        os.close(fd)
    await until(lambda: len(results) >= before + during + 2)
    checker.cancel()
    server.close()
    await server.wait_closed()
    print(json.dumps({
        "passed": [r.passed for r in results],
        "statuses": [r.status.value for r in results],
        "during": during,
        "local_errors": checker.local_errors,
        "https": [https.passed, https.local_error, https.cause],
        "target": str(checker.target),
        "records": records,
    }))

asyncio.run(main())
"""


async def test_a_healthy_server_stays_up_while_the_director_is_out_of_descriptors() -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    got = json.loads(out)
    assert got["during"] <= 1  # at most a check already connected when the descriptors ran out
    assert all(got["passed"]) and set(got["statuses"]) == {"pass"}  # fall=1, never FAIL
    assert got["local_errors"] >= 5
    why = "EMFILE (the director is out of file descriptors)"
    assert got["https"] == [False, True, why]
    errors = [message for level, message in got["records"] if level == "ERROR"]
    assert errors == [
        f"check {got['target']}: no verdict: {why}; status pass kept until a check can be made"
    ]
    assert [m for level, m in got["records"] if level == "WARNING"] == [
        f"check {got['target']}: verdicts again, after {got['local_errors']} check(s) without one"
    ]
