"""Station YAML: validation errors name the key path and the YAML line; CLI validate-config."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from commands.main import main
from edge.config import GenicamSourceConfig, RtspSourceConfig, load_station_config
from eiad.errors import ConfigError
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
station_id: st-1
line_id: line-a
artifact: art
sources:
  - kind: video
    id: cam1
    path: clip.mkv
  - kind: rtsp
    id: cam2
    url: rtsp://10.0.0.5/s1
batching:
  max_batch: 2
mqtt:
  host: 127.0.0.1
  port: 1883
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(text)
    return path


def test_good_config_loads_with_defaults_and_relative_paths(tmp_path):
    config = load_station_config(write(tmp_path, GOOD))
    assert config.path(config.artifact) == tmp_path.resolve() / "art"
    video, rtsp = config.sources
    assert video.policy == "triggered" and rtsp.policy == "free_running" and isinstance(rtsp, RtspSourceConfig)
    assert "rtsp_transport;tcp" in rtsp.ffmpeg_options
    assert (config.mqtt.line, config.mqtt.station) == ("line-a", "st-1")  # taken from the station
    assert config.batching.max_batch == 2 and config.frames.wrong_size == "reject"
    assert config.frames.blank_max_std == 2.0  # blank check on unless turned off
    assert config.mqtt.stats_interval_s == 10.0 and config.mqtt.sparkplug is None


def test_blank_frame_threshold_is_configurable_and_checked(tmp_path):
    config = load_station_config(write(tmp_path, GOOD + "frames: {blank_max_std: 2.5}\n"))
    assert config.frames.blank_max_std == 2.5
    with pytest.raises(ConfigError, match="frames.blank_max_std"):
        load_station_config(write(tmp_path, GOOD + "frames: {blank_max_std: -1}\n"))


def test_errors_name_key_path_and_yaml_line(tmp_path):
    text = GOOD.replace("    path: clip.mkv\n", "    path: clip.mkv\n    fps_limit: 5\n").replace(
        "max_batch: 2", "max_batch: 0"
    )
    with pytest.raises(ConfigError) as caught:
        load_station_config(write(tmp_path, text))
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert f"{tmp_path / 'station.yaml'}:8: sources[0].video.fps_limit: Extra inputs are not permitted" in message
    assert "station.yaml:13: batching.max_batch: Input should be greater than or equal to 1" in message


def test_unknown_top_level_key_and_unknown_kind_are_rejected(tmp_path):
    text = GOOD.replace("line_id: line-a", "line_id: line-a\nlog_level: debug").replace("kind: rtsp", "kind: webcam")
    with pytest.raises(ConfigError) as caught:
        load_station_config(write(tmp_path, text))
    message = str(caught.value)
    assert ":3: log_level: Extra inputs" in message
    assert ":9: sources[1]:" in message and "'webcam'" in message


def test_cross_field_rules(tmp_path):
    text = GOOD.replace("    url: rtsp://10.0.0.5/s1", "    url: rtsp://10.0.0.5/s1\n  - {kind: usb, id: cam1}")
    with pytest.raises(ConfigError, match="repeated: \\['cam1'\\]"):
        load_station_config(write(tmp_path, text))
    text = GOOD + "  username: plc\n"
    with pytest.raises(ConfigError, match=":13: mqtt:.*clear text"):
        load_station_config(write(tmp_path, text))


def test_not_yaml_and_missing_file_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_station_config(write(tmp_path, "sources: [\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_station_config(tmp_path / "nope.yaml")


def test_genicam_defaults_to_hardware_trigger(tmp_path):
    config = GenicamSourceConfig(kind="genicam", id="g", cti=Path("x.cti"))
    assert config.trigger == "hardware" and config.trigger_source == "Line0"


def test_example_config_in_the_repo_is_valid():
    config = load_station_config(REPO / "configs" / "station.yaml")
    assert config.sources[0].kind == "synthetic" and config.mqtt is not None


def test_cli_validate_config_prints_ok_and_errors(tmp_path, tiny_artifact, capsys):
    shutil.copytree(tiny_artifact, tmp_path / "art")
    path = write(tmp_path, GOOD)
    assert main(["edge", "validate-config", str(path)]) == 0
    assert "OK:" in capsys.readouterr().out
    (tmp_path / "art" / "vision.onnx").write_bytes(b"broken")
    assert main(["edge", "validate-config", str(path)]) == 2
    assert "vision.onnx" in capsys.readouterr().err
    assert main(["edge", "validate-config", "--schema-only", str(path)]) == 0
    write(tmp_path, GOOD.replace("max_batch: 2", "max_batch: many"))
    assert main(["edge", "validate-config", str(path)]) == 2
    assert "station.yaml:12: batching.max_batch" in capsys.readouterr().err


def test_cli_validate_config_as_a_process(tmp_path):
    path = write(tmp_path, GOOD.replace("id: cam2", "id: cam 2"))
    done = subprocess.run(
        [sys.executable, "-m", "commands.main", "edge", "validate-config", "--schema-only", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2 and "station.yaml:9: sources[1].rtsp.id" in done.stderr
