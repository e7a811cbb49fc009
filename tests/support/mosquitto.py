"""Mosquitto for tests: the project's launcher (edge/sinks/mqtt/broker.py) plus throw-away TLS files.

broker = Mosquitto(tmp_path, persistence=True).start()
... broker.port ...
broker.stop()        # SIGTERM: saves the persistence DB, keeps the port for restart()
broker.restart()
broker.kill()        # SIGKILL: no save
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from edge.sinks.mqtt.broker import Mosquitto, TlsFiles, free_port, mosquitto_binary

__all__ = ["Mosquitto", "TlsFiles", "free_port", "make_ca", "make_tls_files", "mosquitto_available", "openssl"]


def mosquitto_available() -> bool:
    return mosquitto_binary() is not None


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


def make_ca(directory: Path, name: str, common_name: str) -> Path:
    """A self-signed throw-away CA: `<name>.key` and `<name>.crt` in `directory` (returns the certificate)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        directory,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={common_name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
    )
    return directory / f"{name}.crt"


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost (openssl CLI)."""
    d = Path(directory)
    make_ca(d, "ca", "eiad-test-ca")

    def ssl(*args: str) -> None:
        openssl(d, *args)

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
