"""How a handler's return value travels: small JSON inline in `complete`, anything else
uploaded to the claim's presigned `resultUploadUrl` first. Pure, apart from reading files
and spooling streams to a temporary file (S3 refuses a presigned PUT without a length, and
a retried upload must be able to start again)."""

from __future__ import annotations

import io
import json
import mimetypes
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# The contract allows 256 KB inline; 256,000 bytes is under it whichever K is meant.
INLINE_LIMIT = 256_000
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass
class Result:
    """A handler's answer when it is not plain JSON: bytes, a binary file, a path or an
    iterator of bytes, with its media type (the same name as on the server side)."""

    body: bytes | IO[bytes] | Iterator[bytes] | os.PathLike[str]
    content_type: str = "application/octet-stream"


@dataclass
class Inline:
    """JSON small enough for `complete {"result": ...}`: `data` is the encoded value."""

    data: bytes


@dataclass
class Upload:
    """A body to PUT to `resultUploadUrl`; `open()` gives it from the start, every time."""

    content_type: str
    size: int
    _bytes: bytes | None = None
    _path: Path | None = None
    _spool: IO[bytes] | None = None

    def open(self) -> IO[bytes]:
        if self._bytes is not None:
            return io.BytesIO(self._bytes)
        if self._path is not None:
            return self._path.open("rb")
        assert self._spool is not None
        self._spool.seek(0)
        return io.BufferedReader(_Unclosable(self._spool))

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def encode(value: Any) -> Inline | Upload:
    """The form in which `value` (a handler's return value) is reported."""
    if isinstance(value, Result):
        return _upload(value.body, value.content_type)
    if isinstance(value, bytes | bytearray | memoryview):
        return Upload("application/octet-stream", len(value), _bytes=bytes(value))
    if isinstance(value, os.PathLike):
        path = Path(value)
        return Upload(mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                      path.stat().st_size, _path=path)
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    if len(data) <= INLINE_LIMIT:
        return Inline(data)
    return Upload("application/json", len(data), _bytes=data)


def _upload(body: Any, content_type: str) -> Upload:
    if isinstance(body, bytes | bytearray | memoryview):
        return Upload(content_type, len(body), _bytes=bytes(body))
    if isinstance(body, os.PathLike):
        path = Path(body)
        return Upload(content_type, path.stat().st_size, _path=path)
    chunks: Iterable[bytes] = _chunks(body) if hasattr(body, "read") else body
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    size = 0
    for chunk in chunks:
        spool.write(chunk)
        size += len(chunk)
    return Upload(content_type, size, _spool=spool)


def _chunks(stream: IO[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


class _Unclosable(io.RawIOBase):
    """The spool, read by an upload that may close it, while a retry needs it again."""

    def __init__(self, inner: IO[bytes]):
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
