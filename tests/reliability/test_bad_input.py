"""Bad input catalogue: the station YAML fuzzed with hypothesis (every error names the key
and its line; unknown keys rejected; garbage never crashes the loader), hostile file names
in a DDQA tree. The station takes no MQTT input (test_security.py proves it subscribes to
nothing), so there is no command parser to fuzz yet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import load_station_config
from eiad.errors import ConfigError
from tests.unit.test_ddqa_tree import make_tree, write
from train.data.ddqa.build import DdqaOptions, build_ddqa

BASE = {
    "station_id": "st1",
    "line_id": "l1",
    "artifact": "artifact",
    "sources": [{"kind": "video", "id": "cam0", "path": "line.mkv", "policy": "triggered", "queue_capacity": 4}],
    "batching": {"max_batch": 1, "max_wait_ms": 2.0},
    "metrics": {"enabled": False, "port": 9108},
    "mqtt": {"host": "127.0.0.1", "port": 1883, "keepalive_s": 30},
    "outbox": {"path": "o.db", "max_rows": 1000, "policy": "drop_oldest"},
}
MAPPINGS = [(), ("batching",), ("metrics",), ("mqtt",), ("outbox",), ("sources", 0)]
NUMERIC_LEAVES = [
    ("batching", "max_batch"),
    ("metrics", "port"),
    ("mqtt", "port"),
    ("mqtt", "keepalive_s"),
    ("outbox", "max_rows"),
    ("sources", 0, "queue_capacity"),
]
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def at(data, path):
    for part in path:
        data = data[part]
    return data


def load_text(tmp_path: Path, text: str):
    path = tmp_path / "station.yaml"
    path.write_text(text, encoding="utf-8")
    return load_station_config(path)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_base_config_is_valid(tmp_path):
    assert load_text(tmp_path, yaml.safe_dump(BASE, sort_keys=False)).station_id == "st1"


@FUZZ
@given(where=st.sampled_from(MAPPINGS), key=st.from_regex(r"[a-z][a-z_]{2,15}", fullmatch=True), value=st.integers())
def test_an_unknown_key_anywhere_is_rejected_naming_it_and_its_line(tmp_path, where, key, value):
    data = json.loads(json.dumps(BASE))
    key = f"zz_{key}"  # never a real setting
    at(data, where)[key] = value
    text = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    message = str(caught.value)
    assert key in message and ("xtra" in message.lower() or "not permitted" in message), message
    assert f"station.yaml:{line_of(text, key + ':')}:" in message, (message, text)


@FUZZ
@given(
    leaf=st.sampled_from(NUMERIC_LEAVES),
    bad=st.one_of(
        st.text(alphabet="abcxyz ", min_size=1, max_size=8),
        st.lists(st.integers(), max_size=2),
        st.integers(max_value=-1),
        st.dictionaries(st.just("k"), st.integers(), min_size=1),
    ),
)
def test_a_wrong_type_or_range_names_the_dotted_key_and_its_line(tmp_path, leaf, bad):
    data = json.loads(json.dumps(BASE))
    at(data, leaf[:-1])[leaf[-1]] = bad
    text = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    message = str(caught.value)
    key = leaf[-1]
    lines = [line for line in message.splitlines() if key in line]
    assert lines, message
    # the line named is the key's own line in this file
    wanted = [i for i, line in enumerate(text.splitlines(), 1) if re.match(rf"\s*(- )?{key}:", line)]
    assert any(f"station.yaml:{n}:" in line for n in wanted for line in lines), (message, text)


@FUZZ
@given(garbage=st.one_of(st.binary(max_size=200).map(lambda b: b.decode("latin-1")), st.text(max_size=200)))
def test_garbage_yaml_is_a_config_error_never_a_crash(tmp_path, garbage):
    try:
        load_text(tmp_path, garbage)
    except ConfigError as error:
        assert "station.yaml" in str(error) or "station config" in str(error)
    else:
        pytest.fail("garbage was accepted as a station config")


def test_yaml_tags_that_construct_python_objects_are_refused(tmp_path):
    text = yaml.safe_dump(BASE, sort_keys=False) + "extra: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_text(tmp_path, text)


HOSTILE_NAMES = ["ünïcødé_части_部品", "with spaces and 'quotes'", "-rf --strict", "x" * 200, "$(touch pwned)", "a;b|c"]


def test_hostile_file_names_in_a_ddqa_tree_are_used_as_data_never_interpreted(tmp_path):
    # given a tree whose images carry unicode, spaces, leading dashes, shell syntax and 200-char names
    root = make_tree(tmp_path / "raw", {("D", "S", "crack"): 2}, ok_per_sub=2)
    ng = root / "D" / "S" / "NG" / "crack"
    for _i, name in enumerate(HOSTILE_NAMES):
        write(ng / "image" / f"{name}.png", np.full((20, 30, 3), 120, np.uint8))
        mask = np.zeros((20, 30), np.uint8)
        mask[5:10, 5:15] = 255
        write(ng / "mask" / f"{name}.png", mask)
    # when it is built strictly
    out = tmp_path / "out"
    report = build_ddqa(root, out, DdqaOptions(progress=False, strict=True))
    # then every hostile image is used under its exact name, and nothing was executed or escaped
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    used = {Path(e["image"]).stem for part in ("train", "calibration", "test") for e in split[part]}
    assert set(HOSTILE_NAMES) <= used and report.images_used == 2 + 2 + len(HOSTILE_NAMES)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
