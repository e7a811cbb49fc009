"""`make bench` derives the precision variants it times, and says why one is missing; which broker a bench uses."""

import shutil

from benchmarks import regenerate
from benchmarks.stand_ins.artifact import build_tiny_artifact
from eiad.manifest import load_manifest, write_manifest


def test_precision_variants_are_reused_made_or_explained(tmp_path, monkeypatch):
    artifact = build_tiny_artifact(tmp_path / "artifact")
    split = tmp_path / "split.json"
    split.write_text("{}")
    calls = []

    def fake_eiad(command):  # stands in for `eiad export quantize` (tested in test_export_quantize.py)
        calls.append(command)
        return 2

    monkeypatch.setattr("benchmarks.eiad_command.eiad", fake_eiad)
    notes = []
    assert regenerate._precision_variants(artifact, None, ["fp16"], notes) == []
    assert "no held-out split" in notes[0]

    # An existing fp16 variant of the same model is reused without quantizing again.
    fp16 = tmp_path / "artifact_fp16"
    shutil.copytree(artifact, fp16)
    write_manifest(fp16, load_manifest(fp16).model_copy(update={"precision": "fp16"}))
    notes = []
    assert regenerate._precision_variants(artifact, split, ["fp16", "int8"], notes) == [fp16]
    # int8 was attempted, failed its gate: left out, with the command in the note.
    assert [c[:4] for c in calls] == [["export", "quantize", str(artifact), "--precision"]] and "int8" in calls[0]
    assert len(notes) == 1 and "int8 variant not measured" in notes[0] and "exited 2" in notes[0]


def test_a_bench_on_the_station_broker_needs_its_mqtt_section():
    from contextlib import ExitStack
    from types import SimpleNamespace

    import pytest

    from benchmarks.broker import broker_for_run
    from eiad.errors import ConfigError

    with ExitStack() as stack:
        assert broker_for_run(stack, "config", SimpleNamespace(host="plc-broker", port=8883), "st.yaml") == (
            "plc-broker",
            8883,
        )
        with pytest.raises(ConfigError, match="st.yaml: --broker config needs an mqtt: section"):
            broker_for_run(stack, "config", None, "st.yaml")
