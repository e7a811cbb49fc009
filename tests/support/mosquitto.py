"""A real Mosquitto broker for tests: generated config, free port, tmp dir, PID control.

    broker = Mosquitto(tmp_path, persistence=True).start()
    ... broker.port ...
    broker.stop()        # SIGTERM: saves the persistence DB, keeps the port for restart()
    broker.restart()
    broker.kill()        # SIGKILL: no save
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists()


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost (openssl CLI)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=eiad-test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
        "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    return TlsFiles(d / "ca.crt", d / "server.crt", d / "server.key")


class Mosquitto:
    """One broker process. Not thread-safe; drive it from the test thread."""

    def __init__(self, workdir: Path, *, persistence: bool = True,
                 users: dict[str, str] | None = None, port: int | None = None,
                 tls: "TlsFiles | None" = None, extra_conf: str = "") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.persistence = persistence
        self.users = users or {}
        self.extra_conf = extra_conf
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"

    def _write_conf(self) -> None:
        lines = []
        if os.geteuid() == 0:
            # Run as root Mosquitto drops to user `mosquitto`, which cannot write our tmp dir.
            lines.append("user root")
        lines.append(f"listener {self.port} 127.0.0.1")
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.server_cert}",
                      f"keyfile {self.tls.server_key}"]
        lines += [
                  f"allow_anonymous {'false' if self.users else 'true'}",
                  f"log_dest file {self.log_path}", "log_type all",
                  "max_queued_messages 100000", "max_inflight_messages 100"]
        if self.users:
            pw = self.workdir / "passwd"
            pw.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True,
                               capture_output=True)
            lines.append(f"password_file {pw}")
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        self.conf_path.write_text("\n".join(lines) + "\n" + self.extra_conf)

    def start(self, timeout_s: float = 5.0) -> "Mosquitto":
        if not mosquitto_available():
            raise RuntimeError(f"Mosquitto not found at {MOSQUITTO}: apt-get install mosquitto (.ci/run does)")
        self._write_conf()
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s\n{self.log_text()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int, timeout_s: float = 5.0) -> None:
        if not self.running:
            return
        assert self.proc is not None
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout_s)
        if self.proc.stderr:
            self.proc.stderr.close()

    def stop(self) -> None:
        """Graceful stop (SIGTERM): Mosquitto saves its persistence DB."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Hard stop (SIGKILL): nothing saved since the last autosave."""
        self._signal(signal.SIGKILL)

    def restart(self) -> "Mosquitto":
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
