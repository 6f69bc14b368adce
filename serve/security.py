"""Who is calling: bearer API keys checked in constant time, and the owner each key stands for.

A key is never stored: the conversations created through it record its
digest (`owner_of`). `KeyRing.identify` returns the caller's `Caller` (owner
digest and whether it is an admin) or None for a missing or wrong key;
`loopback` tells whether an address only this machine can reach.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Caller", "KeyRing", "loopback", "owner_of"]


def owner_of(key: str) -> str:
    """The owner recorded for conversations created through `key` (a digest, not the key)."""
    return "key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def loopback(host: str) -> bool:
    """True when `host` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the owner digest of its key, or None without keys."""

    owner: str | None
    admin: bool

    @property
    def sees_all(self) -> bool:
        return self.admin or self.owner is None

    @property
    def label(self) -> str:
        """How access logs name the caller (a short digest prefix, never the key)."""
        if self.owner is None:
            return "-"
        return ("admin:" if self.admin else "") + self.owner[4:16]


class KeyRing:
    """The configured keys; without any, every caller is let in and sees everything."""

    def __init__(self, api_keys: Sequence[str], admin_keys: Sequence[str]) -> None:
        self._keys = [(k.encode("utf-8"), owner_of(k), False) for k in api_keys if k]
        self._keys += [(k.encode("utf-8"), owner_of(k), True) for k in admin_keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, authorization: str | None) -> Caller | None:
        """The caller an `Authorization: Bearer <key>` header names; None if it names none."""
        if not self._keys:
            return Caller(owner=None, admin=True)
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = token.strip().encode("utf-8")
        found: Caller | None = None
        # Every key is compared, each in constant time, so timing tells nothing about
        # which key (or how much of one) matched.
        for key, owner, admin in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = Caller(owner=owner, admin=admin)
        return found
