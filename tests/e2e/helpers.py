"""Start constellate commands as real subprocesses and talk to them over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run ``python -m constellate.cli ARGS`` with ``env`` added, output to ``log``."""
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "constellate.cli", *args],
        env=full,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop_process(proc: subprocess.Popen | None, timeout: float = 60, sig: int = signal.SIGTERM) -> int | None:
    """Signal ``proc`` and wait; SIGKILL it if it outlives ``timeout`` (a process left running would
    consume the next test's tasks from the shared Valkey). Returns the exit code of the first signal's
    stop, or None if it had to be killed."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        return None


def http(
    method: str, url: str, body: Any = None, timeout: float = 30, key: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(
                raw
            ) if raw and resp.headers.get_content_type() == "application/json" else raw
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_for(check, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def metric(text: bytes, name: str) -> float | None:
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def start_up(data_dir: Path, log: Path, env: dict[str, str] | None = None, port: int | None = None):
    """`constellate up` on ``data_dir`` and a free (or given) port; returns the process and its URL once
    /healthz answers."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    proc = spawn(["up", "--port", str(port), "--data-dir", str(data_dir)], env or {}, log)
    try:
        wait_for(lambda: http("GET", f"{base}/healthz")[0] == 200, 180, f"`constellate up` on {base}")
    except BaseException:
        proc.kill()
        raise
    return proc, base


def post_texts(base: str, texts: list[str], ids: list[str], key: str | None = None) -> None:
    """POST tickets in batches of 500; every batch must be accepted whole."""
    for lo in range(0, len(texts), 500):
        batch = [{"id": i, "text": t} for i, t in zip(ids[lo : lo + 500], texts[lo : lo + 500], strict=True)]
        status, body = http("POST", f"{base}/tickets", {"tickets": batch}, key=key)
        assert status == 202 and body["accepted"] == len(batch), body


def stored_tickets(base: str, key: str | None = None) -> float | None:
    """The service's `constellate_tickets` gauge."""
    return metric(http("GET", f"{base}/metrics", key=key)[1], "constellate_tickets")
