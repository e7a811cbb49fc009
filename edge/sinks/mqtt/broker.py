"""Private MQTT brokers: the one Mosquitto launcher the demo, the benchmarks and the tests
share, and a local broker for `eiad edge demo` (Mosquitto when installed, else amqtt).

    broker = Mosquitto(workdir, persistence=False).start()   # a child process on a free port
    ... broker.port ...; broker.stop() / broker.kill() / broker.restart()

    with start_broker("auto") as broker:      # -> LocalBroker(kind, host, port, protocol)
        ... connect to broker.host:broker.port with MQTT broker.protocol ...

Mosquitto runs with a generated config in a folder of the caller's (with `user root`
when we are root: Mosquitto would otherwise drop to user `mosquitto`, which cannot read
our folder) and is stopped by its PID. amqtt (pure Python, MQTT 3.1.1 only) runs on its
own asyncio loop in a daemon thread of this process; it is several times slower than
Mosquitto, plenty for one demo camera. The demo's broker keeps nothing: persistence off.

Thread safety: start and stop from one thread; the broker serves clients from any.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from eiad.errors import ConfigError

log = logging.getLogger(__name__)

BrokerChoice = Literal["auto", "mosquitto", "embedded"]
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LocalBroker:
    """Where the started broker listens and which MQTT version it speaks ("5" or "3.1.1")."""

    kind: Literal["mosquitto", "embedded"]
    host: str
    port: int
    protocol: Literal["5", "3.1.1"]
    detail: str  # e.g. the binary or the library version, for the summary


def mosquitto_binary() -> str | None:
    """The Mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """The broker's TLS listener: a CA and the server's certificate and key (PEM files)."""

    ca_file: Path
    server_cert: Path
    server_key: Path


class Mosquitto:
    """One Mosquitto process on `host:port` (a free port by default), config, log and
    persistence in `workdir`. `start()` returns once it accepts connections; `stop()`
    (SIGTERM: saves the persistence database) and `restart()` keep the port; `kill()` is
    SIGKILL (nothing saved since the last autosave). Drive it from one thread."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        persistence: bool = True,
        users: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        extra_conf: str = "",
        log_all: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.persistence, self.users, self.tls, self.extra_conf, self.log_all = (
            persistence,
            users or {},
            tls,
            extra_conf,
            log_all,
        )
        self.binary = mosquitto_binary()
        self.proc: subprocess.Popen | None = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"

    def _write_conf(self) -> None:
        lines = ["user root"] if os.geteuid() == 0 else []
        lines.append(f"listener {self.port} {self.host}")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
        lines += [
            f"allow_anonymous {'false' if self.users else 'true'}",
            f"log_dest file {self.log_path}",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
        ]
        if self.log_all:
            lines.append("log_type all")
        if self.users:
            passwords = self.workdir / "passwd"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), user, password], check=True, capture_output=True
                )
            lines.append(f"password_file {passwords}")
        lines += (
            ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
            if self.persistence
            else ["persistence false"]
        )
        self.conf_path.write_text("\n".join(lines) + "\n" + self.extra_conf)

    def start(self, timeout_s: float = _START_TIMEOUT_S) -> Mosquitto:
        if self.binary is None:
            raise ConfigError("Mosquitto is not installed: apt-get install mosquitto")
        self._write_conf()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

        def alive() -> str:
            if self.proc.poll() is None:
                return ""
            err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
            return f"{self.binary} exited with {self.proc.returncode}: {err}\n{self.log_text()}"

        try:
            _wait_listening(self.host, self.port, alive, "Mosquitto", timeout_s)
        except ConfigError:
            self.kill()
            raise
        log.info("Mosquitto (%s) listening on %s:%d, pid %d", self.binary, self.host, self.port, self.proc.pid)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int, timeout_s: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout_s)
        if self.proc.stderr:
            self.proc.stderr.close()

    def stop(self) -> None:
        """Graceful stop (SIGTERM): Mosquitto saves its persistence database."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Hard stop (SIGKILL): nothing saved since the last autosave."""
        self._signal(signal.SIGKILL)

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def start_broker(choice: BrokerChoice = "auto", host: str = "127.0.0.1") -> Iterator[LocalBroker]:
    """Start a private broker on a free port; stop it when the block ends.

    "auto" picks Mosquitto when its binary is installed, else the embedded broker.
    Raises ConfigError saying what to install when the chosen broker cannot start.
    """
    binary = mosquitto_binary()
    if choice == "mosquitto" or (choice == "auto" and binary):
        if binary is None:
            raise ConfigError("Mosquitto is not installed: apt-get install mosquitto, or use --broker embedded")
        with _mosquitto(binary, host) as broker:
            yield broker
    elif choice in ("auto", "embedded"):
        with _embedded(host) as broker:
            yield broker
    else:
        raise ConfigError(f"unknown broker {choice!r}: use auto, mosquitto or embedded")


def _wait_listening(host: str, port: int, alive, what: str, timeout_s: float = _START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        problem = alive()
        if problem:
            raise ConfigError(f"{what} did not start: {problem}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ConfigError(f"{what} did not listen on {host}:{port} within {timeout_s:.0f} s")


@contextlib.contextmanager
def _mosquitto(binary: str, host: str) -> Iterator[LocalBroker]:
    with tempfile.TemporaryDirectory(prefix="eiad-demo-broker-") as tmp:
        broker = Mosquitto(Path(tmp), host=host, persistence=False, log_all=False).start()
        try:
            yield LocalBroker("mosquitto", host, broker.port, "5", binary)
        finally:
            broker.stop()


@contextlib.contextmanager
def _embedded(host: str) -> Iterator[LocalBroker]:
    try:
        from amqtt.broker import Broker
    except ImportError as error:
        raise ConfigError(
            "no broker available: install Mosquitto (apt-get install mosquitto) "
            "or the pure-Python broker (pip install amqtt)"
        ) from error
    import amqtt

    port = free_port(host)
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 64}},
        # Only anonymous auth: the default packet/event logger plugins cost time per message.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    runner = _EmbeddedLoop(config, Broker)
    # amqtt logs routine events at WARNING (e.g. "PUBACK for unknown pending message" for
    # acknowledgements it already settled): keep the demo's terminal for the verdicts.
    # amqtt's state machine library (transitions) logs every state change at INFO.
    quiet = {name: logging.getLogger(name) for name in ("amqtt", "transitions")}
    old_levels = {name: logger.level for name, logger in quiet.items()}
    for logger in quiet.values():
        logger.setLevel(max(logger.level, logging.ERROR))
    runner.start()
    try:
        if not runner.started.wait(_START_TIMEOUT_S) or runner.problem():
            raise ConfigError(f"the embedded amqtt broker did not start: {runner.problem() or 'timeout'}")
        log.info("embedded amqtt broker %s listening on %s:%d", getattr(amqtt, "__version__", "?"), host, port)
        yield LocalBroker("embedded", host, port, "3.1.1", f"amqtt {getattr(amqtt, '__version__', '?')}")
    finally:
        runner.stop()
        for name, logger in quiet.items():
            logger.setLevel(old_levels[name])


class _EmbeddedLoop:
    """amqtt's Broker on a private asyncio loop in a daemon thread."""

    def __init__(self, config: dict, broker_class) -> None:
        self._config = config
        self._broker_class = broker_class
        self._loop = asyncio.new_event_loop()
        self._broker = None
        self._error: BaseException | None = None
        self.started = threading.Event()  # set once listening, or when starting failed
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def problem(self) -> str:
        if self._error is not None:
            return f"{type(self._error).__name__}: {self._error}"
        return "" if self._thread.is_alive() else "the broker thread ended"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._broker = self._broker_class(self._config, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
            self.started.set()
            self._loop.run_forever()
        except BaseException as error:  # reported to the starter through problem()
            self._error = error
        finally:
            self.started.set()
            self._loop.close()

    def stop(self) -> None:
        if self._broker is not None and self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                future.result(timeout=10.0)
            except Exception as error:  # a broker that fails to shut down cleanly still goes away with the loop
                log.warning("embedded broker shutdown: %s", error)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
