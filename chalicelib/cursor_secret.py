"""Where the key that signs listing cursors comes from.

A cursor names a job ID under a tenant and a query; its signature is what stops a client
from forging one. The key must therefore be secret and random, never derived from names a
client can see (the bucket name is in every `resultUrl`). On AWS the infra stack generates
one per stage in Secrets Manager (`jobgate-<stage>-cursor-secret`), named to the functions
by `JOBGATE_CURSOR_SECRET_ID` and read once per container, on the first listing that needs
it (the workers never read it). `JOBGATE_CURSOR_SECRET` gives the key itself (the local
runner sets a random one). With neither, `resolve` fails at start-up: a per-container
random key would silently break paging whenever a request reaches another container."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

MIN_LENGTH = 32
SECRET_ENV, SECRET_ID_ENV = "JOBGATE_CURSOR_SECRET", "JOBGATE_CURSOR_SECRET_ID"


class MissingCursorSecret(RuntimeError):
    """The deployment names no cursor secret: refuse to start rather than sign weakly."""


class ManagedSecret:
    """A Secrets Manager secret, fetched on first use and kept for the container's life.
    A failed fetch is not cached: the next listing tries again."""

    def __init__(self, secret_id: str, region: str, client: SecretsManagerClient | None = None):
        self.secret_id, self.region, self.client = secret_id, region, client
        self._value: bytes | None = None
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    if self.client is None:
                        import boto3

                        self.client = boto3.client("secretsmanager", region_name=self.region)
                    out = self.client.get_secret_value(SecretId=self.secret_id)
                    value = out.get("SecretString") or ""
                    if len(value) < MIN_LENGTH:
                        raise MissingCursorSecret(
                            f"secret {self.secret_id} holds fewer than {MIN_LENGTH} characters")
                    self._value = value.encode()
        return self._value


def resolve(env: Mapping[str, str], region: str) -> Callable[[], bytes]:
    """The cursor key's source for this process; MissingCursorSecret when none is set."""
    literal = env.get(SECRET_ENV) or ""
    if literal:
        if len(literal) < MIN_LENGTH:
            raise MissingCursorSecret(f"{SECRET_ENV} must be at least {MIN_LENGTH} characters")
        key = literal.encode()
        return lambda: key
    secret_id = env.get(SECRET_ID_ENV) or ""
    if secret_id:
        return ManagedSecret(secret_id, region)
    raise MissingCursorSecret(
        f"no key to sign listing cursors: set {SECRET_ID_ENV} to the stage's Secrets Manager "
        f"secret (infra/template.yaml creates jobgate-<stage>-cursor-secret; "
        f"infra/stage_config.py writes it into .chalice/config.json) or {SECRET_ENV} to a "
        f"random value of at least {MIN_LENGTH} characters")
