"""The MQTT sink: verdicts and explanations to the PLC/SCADA broker, lossless.

`sink.py` (the sink), `payloads.py` (what goes on the wire), `outbox/` (the durable
SQLite outbox every message is committed to first), `dispatch.py` (the thread that
publishes from the outbox and deletes on acknowledgement), `client.py` (paho client and
connection state), `config.py` (the `mqtt:` and `outbox:` settings), `stats.py` (the
periodic stats message)."""
