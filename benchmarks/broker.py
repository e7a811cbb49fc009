"""A private Mosquitto for one benchmark run: free port, temp dir, stopped by its PID.

Why private by default: a benchmark should neither disturb the plant's broker nor be
disturbed by its other clients, and its result should be reproducible on any box with
Mosquitto installed. `--broker config` measures against the configured broker instead.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from eiad.errors import ConfigError

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    """Context manager: `with PrivateBroker() as broker: broker.port`."""

    def __init__(self) -> None:
        self.binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        self.port = 0
        self._proc: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "PrivateBroker":
        if self.binary is None:
            raise ConfigError("Mosquitto is not installed: apt-get install mosquitto, or pass --broker config to use the station's broker")
        self._dir = tempfile.TemporaryDirectory(prefix="eiad-bench-broker-")
        self.port = _free_port()
        conf = Path(self._dir.name) / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "max_queued_messages 100000", "max_inflight_messages 100", "log_dest none"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # as root Mosquitto would drop to a user that cannot read our temp dir
        conf.write_text("\n".join(lines) + "\n")
        self._proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise ConfigError(f"Mosquitto ({self.binary}) exited at start: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    log.info("private Mosquitto listening on 127.0.0.1:%d", self.port)
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise ConfigError(f"Mosquitto did not listen on port {self.port} within 5 s")

    def __exit__(self, *exc) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(5.0)
            except subprocess.TimeoutExpired:
                os.kill(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5.0)
        if self._proc is not None and self._proc.stderr:
            self._proc.stderr.close()
        if self._dir is not None:
            self._dir.cleanup()
        self._proc = None


def broker_for_run(stack, broker: str, mqtt, config_path) -> tuple[str, int]:
    """(host, port) a benchmark publishes to: a PrivateBroker entered on `stack` for 'private',
    else the station's `mqtt:` broker ('config'), which the config must then have."""
    if broker == "private":
        return "127.0.0.1", stack.enter_context(PrivateBroker()).port
    if mqtt is None:
        raise ConfigError(f"{config_path}: --broker config needs an mqtt: section")
    return mqtt.host, mqtt.port
