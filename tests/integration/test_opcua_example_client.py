"""docs/examples/opcua_plc_client.py, the asyncua example the OPC UA docs point PLC
integrators to, run against a real server: it must connect, follow events, read the camera
variables and fetch a result by id exactly as documented."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import threading
import time
from pathlib import Path

from edge.access.passwords import hash_password
from edge.opcua.server import OpcUaServer
from edge.opcua.settings import OpcUaSettings
from edge.sinks.mqtt.broker import free_port
from tests.support_hmi.page import part

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "opcua_plc_client.py"


def _example():
    spec = importlib.util.spec_from_file_location("opcua_plc_client", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_client_follows_results_and_fetches_one_by_id(tmp_path, monkeypatch, capsys):
    example = _example()
    # given the example's own certificate, trusted by the station's server (as the docs say to do)
    _, cert = asyncio.run(example.own_certificate(tmp_path / "plc_pki"))
    assert "copy it into the station's <pki_dir>/trusted/" in capsys.readouterr().out
    (tmp_path / "pki" / "trusted").mkdir(parents=True)
    shutil.copy(cert, tmp_path / "pki" / "trusted" / "plc.der")
    settings = OpcUaSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": free_port(),
            "users": {"plc1": {"role": "viewer", "password_hash": hash_password("plc-secret-1")}},
            "pki_dir": str(tmp_path / "pki"),
        }
    )
    server = OpcUaServer(settings, lambda p: p, {"line": "l1", "station": "st1", "model_id": "m"}, ["cam0"]).start()
    server.set_state("Operational")
    monkeypatch.setenv("EIAD_OPCUA_PASSWORD", "plc-secret-1")
    argv = ["--url", server.endpoint, "--user", "plc1", "--server-cert", str(tmp_path / "pki" / "own" / "cert.der")]
    argv += ["--pki", str(tmp_path / "plc_pki"), "--parts", "3", "--wait-s", "20"]
    outcome = {}
    follower = threading.Thread(target=lambda: outcome.setdefault("code", example.main(argv)))
    try:
        follower.start()
        # when the line decides parts (one every 50 ms until the client has followed its three)
        sent = []
        deadline = time.monotonic() + 30
        while follower.is_alive() and time.monotonic() < deadline:
            result, _ = part("NG" if len(sent) % 2 == 0 else "OK")
            server.handle(result)
            sent.append(result)
            time.sleep(0.05)
        follower.join(5)
    finally:
        server.close()
    # then it printed three results the station sent, in order, and fetched the last one by id
    out = capsys.readouterr().out
    assert outcome.get("code") == 0, out
    assert "the station is Operational" in out
    followed = [line.rsplit(" id ", 1)[1] for line in out.splitlines() if " id " in line]
    ids = [r.inspection_id for r in sent]
    assert len(followed) == 3 and ids.index(followed[0]) + 2 == ids.index(followed[2])
    assert f"GetResultById {followed[-1]}: " in out and "ReleaseResultHandle" in out and "error 0" in out
    assert "cam0 latest: #" in out
