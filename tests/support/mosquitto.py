"""Mosquitto for tests: the project's launcher (edge/broker.py) plus throw-away TLS files.

broker = Mosquitto(tmp_path, persistence=True).start()
... broker.port ...
broker.stop()        # SIGTERM: saves the persistence DB, keeps the port for restart()
broker.restart()
broker.kill()        # SIGKILL: no save
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from edge.broker import Mosquitto, TlsFiles, free_port, mosquitto_binary

__all__ = ["Mosquitto", "TlsFiles", "free_port", "make_tls_files", "mosquitto_available"]


def mosquitto_available() -> bool:
    return mosquitto_binary() is not None


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost (openssl CLI)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=eiad-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return TlsFiles(d / "ca.crt", d / "server.crt", d / "server.key")
