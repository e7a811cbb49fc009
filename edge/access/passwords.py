"""Password hashes for the page's users: scrypt from the standard library.

Format: `scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`; only hashes go into config files.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_N, _R, _P, _LEN = 2**14, 8, 1, 32


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("an empty password is not a password")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_hash_format(stored: str) -> None:
    """ValueError saying what is wrong when `stored` is not a hash this module wrote."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a password hash: expected 'scrypt$n$r$p$salt$hash' from 'eiad edge password-hash'")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        bytes.fromhex(parts[4])
        bytes.fromhex(parts[5])
    except ValueError:
        raise ValueError("malformed password hash: make a new one with 'eiad edge password-hash'") from None
    if n < 2**10 or n & (n - 1) or r < 1 or p < 1:
        raise ValueError("password hash parameters out of range: make a new one with 'eiad edge password-hash'")


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored` (constant-time comparison)."""
    _, n, r, p, salt, digest = stored.split("$")
    expected = bytes.fromhex(digest)
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    return hmac.compare_digest(got, expected)
