"""URLs that may carry a password (``redis://:pw@host``, ``https://user:pw@hook``), never shown with it.

:class:`SecretURL` is a ``str`` (clients connect with it unchanged) whose
``repr``, ``str`` and formatting hide the password: a log line, an error
message, a dataclass's repr or a stack dump with locals (the worker's
SIGUSR1 dump prints every frame's locals) shows ``redis://:***@host``.
:func:`reveal` gives the full text where a client library needs it as
plain text.

>>> url = SecretURL("redis://:s3cret@127.0.0.1:6379/0")
>>> url, f"{url}", str(url), "%s" % url
(SecretURL('redis://:***@127.0.0.1:6379/0'), 'redis://:***@127.0.0.1:6379/0', 'redis://:***@127.0.0.1:6379/0', 'redis://:***@127.0.0.1:6379/0')
>>> reveal(url) == "redis://:s3cret@127.0.0.1:6379/0", redact("https://user:pw@hook.example/x")
(True, 'https://user:***@hook.example/x')
"""

from __future__ import annotations

import re

__all__ = ["SecretURL", "redact", "reveal", "secret_option"]

_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^:@/]*):([^@/]*)@")


def redact(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***`` (unchanged without one)."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", str.__str__(url), count=1)


class SecretURL(str):
    """A URL whose password never shows (see the module's doc)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SecretURL({redact(self)!r})"

    def __str__(self) -> str:
        return redact(self)

    def __format__(self, spec: str) -> str:
        return format(redact(self), spec)


def reveal(url: str) -> str:
    """The full text of a URL (a plain ``str`` copy), for a client that needs it."""
    return str.__str__(url)


def secret_option(value: str | None) -> SecretURL | None:
    """A click option callback: the option's value as a :class:`SecretURL` (``ctx.params`` then hold no password)."""
    return SecretURL(value) if value else value
