"""The operator page's users: password hashes, settings, the login limit, sessions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.access.passwords import check_hash_format, hash_password, verify_password
from edge.hmi.auth import LoginLimiter, Sessions
from edge.hmi.settings import HmiSettings
from tests.support_hmi.page import PASSWORDS, settings


def test_a_hash_verifies_its_password_only_and_never_contains_it():
    stored = hash_password("s3cret-line-4")
    assert "s3cret" not in stored
    assert verify_password("s3cret-line-4", stored)
    assert not verify_password("s3cret-line-5", stored)
    assert hash_password("s3cret-line-4") != stored  # salted


@pytest.mark.parametrize("bad", ["plaintext", "scrypt$16384$8$1$zz$00", "scrypt$1000$8$1$00$00", "md5$1$2$3$4$5"])
def test_a_malformed_hash_is_refused_with_what_to_do(bad):
    with pytest.raises(ValueError, match="password-hash"):
        check_hash_format(bad)


def test_settings_refuse_a_page_nobody_can_log_in_to_and_a_password_in_place_of_a_hash(tmp_path):
    with pytest.raises(ValidationError, match="hmi.users is empty"):
        HmiSettings.model_validate({"users": {}})
    with pytest.raises(ValidationError, match="not a password hash"):
        HmiSettings.model_validate({"users": {"a": {"role": "operator", "password_hash": "hunter22"}}})
    with pytest.raises(ValidationError, match="exactly one"):
        HmiSettings.model_validate({"users": {"a": {"role": "operator"}}})
    assert settings(tmp_path).host == "127.0.0.1"  # only this box unless configured


def test_a_hash_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EIAD_TEST_HASH", hash_password("from-the-env-1"))
    page = HmiSettings.model_validate({"users": {"eve": {"role": "viewer", "password_hash_env": "EIAD_TEST_HASH"}}})
    assert Sessions(page).login("eve", "from-the-env-1") is not None
    monkeypatch.delenv("EIAD_TEST_HASH")
    with pytest.raises(ValueError, match="EIAD_TEST_HASH is not set"):
        Sessions(page)


def test_sessions_carry_role_and_csrf_and_end_at_logout(tmp_path):
    sessions = Sessions(settings(tmp_path))
    assert sessions.login("olga", "wrong") is None
    assert sessions.login("nobody", PASSWORDS["olga"]) is None
    token, session = sessions.login("olga", PASSWORDS["olga"])
    assert session.may_write and session.csrf_ok(session.csrf) and not session.csrf_ok("x" + session.csrf)
    assert not session.csrf_ok(None)
    _, viewer = sessions.login("vic", PASSWORDS["vic"])
    assert not viewer.may_write
    assert sessions.get(token) == session
    sessions.logout(token)
    assert sessions.get(token) is None


def test_the_login_limit_counts_failures_per_client_within_its_window():
    limiter = LoginLimiter(attempts=3, window_s=60.0)
    for t in (0.0, 1.0, 2.0):
        assert limiter.retry_after_s("10.0.0.5", now=t) == 0.0
        limiter.failed("10.0.0.5", now=t)
    assert limiter.retry_after_s("10.0.0.5", now=3.0) == pytest.approx(57.0)
    assert limiter.retry_after_s("10.0.0.6", now=3.0) == 0.0  # another client is not punished
    assert limiter.retry_after_s("10.0.0.5", now=60.5) == 0.0  # the first failure left the window


def _password_hash_command(typed: str):
    import subprocess
    import sys

    command = [sys.executable, "-m", "commands.main", "edge", "password-hash"]
    return subprocess.run(command, input=typed + "\n", capture_output=True, text=True, timeout=60)


def test_the_password_hash_command_prints_a_hash_of_the_password_read_from_stdin():
    done = _password_hash_command("a-long-password")
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    assert verify_password("a-long-password", stored) and "a-long-password" not in stored
    short = _password_hash_command("short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
