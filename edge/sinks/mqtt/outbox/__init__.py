"""The durable outbox behind the MQTT sink: `store.py` (Outbox: commit, replay, ack),
`sqlite_file.py` (its file: lock, quarantine of a corrupt file, WAL checkpoints),
`values.py` (the messages and counters it holds)."""
