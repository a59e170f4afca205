"""Kafka credentials and TLS, the same for every client inferwatch opens.

Read from the environment, beside ``KAFKA_BOOTSTRAP_SERVERS`` (a secret on a
command line is visible to every user of the machine in ``ps``):

==============================  ==============================================
``KAFKA_SECURITY_PROTOCOL``     ``PLAINTEXT`` (default), ``SSL``,
                                ``SASL_PLAINTEXT`` or ``SASL_SSL``
``KAFKA_SASL_MECHANISM``        ``PLAIN`` (default with SASL),
                                ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``
``KAFKA_SASL_USERNAME``         required with SASL
``KAFKA_SASL_PASSWORD``         required with SASL (never logged or shown)
``KAFKA_SSL_CA_LOCATION``       a PEM file of the CAs to trust (with SSL;
                                default: the system's)
``KAFKA_SSL_CERTIFICATE_LOCATION``  this client's certificate (PEM), where the
                                brokers ask for one (mutual TLS)
``KAFKA_SSL_KEY_LOCATION``      its private key (PEM, unencrypted)
==============================  ==============================================

The same settings may sit in the config file's ``kafka:`` section
(``security_protocol``, ``sasl_mechanism``, ``sasl_username``,
``sasl_password_file``, ``ssl_ca_location``, ``ssl_certificate_location``,
``ssl_key_location``); a variable that is set wins over the file. The
password is never read from the config itself: ``KAFKA_SASL_PASSWORD``, or
a file (``sasl_password_file``, ``KAFKA_SASL_PASSWORD_FILE``: a mounted
secret) holding it.

Each client library takes them in its own words: :meth:`KafkaSecurity.librdkafka`
(confluent-kafka's consumers, producers and admin), :meth:`KafkaSecurity.kafka_python`
and :meth:`KafkaSecurity.faust` (the topic guard's agent). A wrong value fails
at start-up naming the variable.

>>> s = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u",
...                             "KAFKA_SASL_PASSWORD": "s3cret"})
>>> s.librdkafka()["sasl.mechanism"], s.kafka_python()["sasl_plain_username"], "s3cret" in repr(s)
('PLAIN', 'u', False)
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["KafkaSecurity", "child_env", "kafka_security", "use_config_section"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = "PLAIN"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_location: str = ""
    certificate_location: str = ""
    key_location: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, origin: Mapping[str, str] | None = None
                 ) -> KafkaSecurity:
        """The settings from ``env`` (default: the process's); ``origin`` names where a variable's value
        came from when it was not the environment (a config file's field), for the errors."""
        env = os.environ if env is None else env
        where = (lambda var: (origin or {}).get(var, var))
        protocol = env.get("KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
        if protocol not in PROTOCOLS:
            raise ConfigError(f"{where('KAFKA_SECURITY_PROTOCOL')}: expected one of {', '.join(PROTOCOLS)}, "
                              f"got {protocol!r}")
        mechanism = env.get("KAFKA_SASL_MECHANISM", "").strip().upper() or "PLAIN"
        if mechanism not in MECHANISMS:
            raise ConfigError(f"{where('KAFKA_SASL_MECHANISM')}: expected one of {', '.join(MECHANISMS)}, "
                              f"got {mechanism!r}")
        username, password = env.get("KAFKA_SASL_USERNAME", ""), env.get("KAFKA_SASL_PASSWORD", "")
        secret_file = env.get("KAFKA_SASL_PASSWORD_FILE", "")
        if not password and secret_file:
            try:
                password = open(secret_file, encoding="utf-8").read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{where('KAFKA_SASL_PASSWORD_FILE')}: cannot read {secret_file!r} "
                                  f"({getattr(exc, 'strerror', None) or 'not UTF-8 text'})") from None
        if protocol.startswith("SASL") and not (username and password):
            missing = where("KAFKA_SASL_USERNAME") if not username else "KAFKA_SASL_PASSWORD (or a password file)"
            raise ConfigError(f"{missing}: required with security protocol {protocol}")
        files = {}
        for name in ("KAFKA_SSL_CA_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION"):
            files[name] = env.get(name, "")
            if files[name] and not os.path.isfile(files[name]):
                raise ConfigError(f"{where(name)}: no such file: {files[name]!r}")
        if bool(files["KAFKA_SSL_CERTIFICATE_LOCATION"]) != bool(files["KAFKA_SSL_KEY_LOCATION"]):
            missing = "KAFKA_SSL_KEY_LOCATION" if files["KAFKA_SSL_CERTIFICATE_LOCATION"] else \
                "KAFKA_SSL_CERTIFICATE_LOCATION"
            raise ConfigError(f"{where(missing)}: a client certificate needs both its certificate and its key")
        return cls(protocol, mechanism, username, password, *files.values())

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    @property
    def plain(self) -> bool:
        return self.protocol == "PLAINTEXT"

    def hint(self) -> str:
        """What to check when no broker answers: the login, or whether the cluster asks for one."""
        if self.sasl:
            return (f"; with KAFKA_SECURITY_PROTOCOL={self.protocol} (SASL {self.mechanism}): check "
                    "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if self.tls:
            return "; with KAFKA_SECURITY_PROTOCOL=SSL: check the broker's certificate and KAFKA_SSL_CA_LOCATION"
        return ("; if the cluster asks for a login or TLS, set KAFKA_SECURITY_PROTOCOL and its KAFKA_SASL_* or "
                "KAFKA_SSL_* settings")

    def librdkafka(self) -> dict[str, str]:
        """Properties for confluent-kafka (librdkafka) clients."""
        out = {"security.protocol": self.protocol}
        if self.sasl:
            out.update({"sasl.mechanism": self.mechanism, "sasl.username": self.username,
                        "sasl.password": self.password})
        if self.tls and self.ca_location:
            out["ssl.ca.location"] = self.ca_location
        if self.tls and self.certificate_location:
            out.update({"ssl.certificate.location": self.certificate_location,
                        "ssl.key.location": self.key_location})
        return out

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients."""
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            out.update({"sasl_mechanism": self.mechanism, "sasl_plain_username": self.username,
                        "sasl_plain_password": self.password})
        if self.tls and self.ca_location:
            out["ssl_cafile"] = self.ca_location
        if self.tls and self.certificate_location:
            out.update({"ssl_certfile": self.certificate_location, "ssl_keyfile": self.key_location})
        return out

    def faust(self) -> dict[str, Any]:
        """Settings for a Faust app (aiokafka underneath)."""
        if self.plain:
            return {}
        import faust

        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=self.ca_location or None)
            if self.certificate_location:
                context.load_cert_chain(self.certificate_location, self.key_location)
        if self.sasl:
            return {"broker_credentials": faust.SASLCredentials(username=self.username, password=self.password,
                                                                mechanism=self.mechanism, ssl_context=context)}
        return {"broker_credentials": faust.SSLCredentials(context)}


FILE_FIELDS = {"security_protocol": "KAFKA_SECURITY_PROTOCOL", "sasl_mechanism": "KAFKA_SASL_MECHANISM",
               "sasl_username": "KAFKA_SASL_USERNAME", "sasl_password_file": "KAFKA_SASL_PASSWORD_FILE",
               "ssl_ca_location": "KAFKA_SSL_CA_LOCATION", "ssl_certificate_location": "KAFKA_SSL_CERTIFICATE_LOCATION",
               "ssl_key_location": "KAFKA_SSL_KEY_LOCATION"}

_from_file: dict[str, str] = {}  # the config file's ``kafka:`` section, as variables
_origin: dict[str, str] = {}


def use_config_section(section: object, source: str = "config") -> KafkaSecurity:
    """Take a config file's ``kafka:`` section as the defaults under the environment, checked now.

    >>> use_config_section({"security_protocol": "SASL_SSL", "sasl_password": "x"}, "monitor.yaml")
    Traceback (most recent call last):
    ...
    inferwatch.errors.ConfigError: monitor.yaml: kafka.sasl_password: a password is not read from the config: \
set KAFKA_SASL_PASSWORD, or sasl_password_file to a file that holds it
    >>> _ = use_config_section({})
    """
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: kafka: expected a mapping of settings, got {type(section).__name__}")
    settings, origin = {}, {}
    for key, value in section.items():
        if key == "sasl_password":
            raise ConfigError(f"{source}: kafka.sasl_password: a password is not read from the config: set "
                              "KAFKA_SASL_PASSWORD, or sasl_password_file to a file that holds it")
        if key not in FILE_FIELDS:
            raise ConfigError(f"{source}: kafka.{key}: unknown setting (expected one of {', '.join(FILE_FIELDS)})")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{source}: kafka.{key}: expected a non-empty string, got {value!r}")
        settings[FILE_FIELDS[key]] = value.strip()
        origin[FILE_FIELDS[key]] = f"{source}: kafka.{key}"
    checked = KafkaSecurity.from_env(_merged(settings), _origins(origin))
    _from_file.clear()
    _from_file.update(settings)
    _origin.clear()
    _origin.update(origin)
    return checked


def _set() -> dict[str, str]:
    """The environment's variables that say something (an empty one, ``FOO: ${FOO:-}``, says nothing)."""
    return {k: v for k, v in os.environ.items() if v.strip()}


def _merged(settings: Mapping[str, str]) -> dict[str, str]:
    return {**settings, **_set()}


def _origins(origin: Mapping[str, str]) -> dict[str, str]:
    given = _set()
    return {var: label for var, label in origin.items() if var not in given}


def kafka_security() -> KafkaSecurity:
    """The process's Kafka security settings: the environment over the config's ``kafka:`` section."""
    if not _from_file:
        return KafkaSecurity.from_env()
    return KafkaSecurity.from_env(_merged(_from_file), _origins(_origin))


def child_env() -> dict[str, str]:
    """The environment for a child process that opens Kafka clients: this one's, with the config file's
    ``kafka:`` settings as variables where the environment gives none (a password file stays a file)."""
    return {**os.environ, **{k: v for k, v in _from_file.items() if not os.environ.get(k, "").strip()}}
