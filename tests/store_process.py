"""The bookstore backend in its own process, for the integration tests, `make eval` and the
benchmarks: `tidings store` on a free 127.0.0.1 port with its SQLite database in a folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tidings.cli.infra import free_port
from tidings.store.db import Database


class StoreProcess:
    """Start with `start()`, stop with `stop()` (or use it as a context manager)."""

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.database_url = f"sqlite:///{folder / 'store.db'}"
        self.log_path = folder / "store.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> StoreProcess:
        env = {
            **os.environ,
            "STORE_HOST": "127.0.0.1",
            "STORE_PORT": str(self.port),
            "STORE_DATABASE_URL": self.database_url,
            "LOG_FORMAT": "json",
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tidings.cli.main", "store"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the store exited: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the store was not ready in {timeout_s} s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def database(self) -> Database:
        """The store's own database, to check answers against (close it after use)."""
        return Database(self.database_url)

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> StoreProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
