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

__all__ = ["KafkaSecurity", "kafka_security"]

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
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if env is None else env
        protocol = env.get("KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
        if protocol not in PROTOCOLS:
            raise ConfigError(f"KAFKA_SECURITY_PROTOCOL: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        mechanism = env.get("KAFKA_SASL_MECHANISM", "").strip().upper() or "PLAIN"
        if mechanism not in MECHANISMS:
            raise ConfigError(f"KAFKA_SASL_MECHANISM: expected one of {', '.join(MECHANISMS)}, got {mechanism!r}")
        username, password = env.get("KAFKA_SASL_USERNAME", ""), env.get("KAFKA_SASL_PASSWORD", "")
        if protocol.startswith("SASL") and not (username and password):
            missing = "KAFKA_SASL_USERNAME" if not username else "KAFKA_SASL_PASSWORD"
            raise ConfigError(f"{missing}: required with KAFKA_SECURITY_PROTOCOL={protocol}")
        files = {}
        for name in ("KAFKA_SSL_CA_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION"):
            files[name] = env.get(name, "")
            if files[name] and not os.path.isfile(files[name]):
                raise ConfigError(f"{name}: no such file: {files[name]!r}")
        if bool(files["KAFKA_SSL_CERTIFICATE_LOCATION"]) != bool(files["KAFKA_SSL_KEY_LOCATION"]):
            missing = "KAFKA_SSL_KEY_LOCATION" if files["KAFKA_SSL_CERTIFICATE_LOCATION"] else \
                "KAFKA_SSL_CERTIFICATE_LOCATION"
            raise ConfigError(f"{missing}: a client certificate needs both its certificate and its key")
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


def kafka_security() -> KafkaSecurity:
    """The process's Kafka security settings (see the module's text)."""
    return KafkaSecurity.from_env()
