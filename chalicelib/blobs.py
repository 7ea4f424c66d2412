"""S3 objects of a job: uploaded content, the result, a large log. Keys start with a
prefix per kind so lifecycle rules can expire each kind on its own schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from .objectkeys import content_key, log_key, result_key
from .ports import BlobsUnavailable, translating

__all__ = ["BlobInfo", "BlobStore", "content_key", "log_key", "result_key"]

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


@dataclass(frozen=True)
class BlobInfo:
    size: int
    content_type: str | None


@translating(BlobsUnavailable)  # botocore's errors stay in this module
class BlobStore:
    def __init__(self, client: S3Client, bucket: str):
        self._s3 = client
        self._bucket = bucket

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)

    def upload(self, key: str, stream: IO[bytes], content_type: str) -> int:
        """Stream a file-like object (multipart beyond 8 MB); returns the stored size."""
        self._s3.upload_fileobj(stream, self._bucket, key, ExtraArgs={"ContentType": content_type})
        return int(self._s3.head_object(Bucket=self._bucket, Key=key)["ContentLength"])

    def copy(self, source: str, target: str) -> None:
        """Server-side copy (no bytes through the Lambda), for a chain's next content."""
        self._s3.copy({"Bucket": self._bucket, "Key": source}, self._bucket, target)

    def get(self, key: str) -> bytes | None:
        try:
            data: bytes = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        return data

    def head(self, key: str) -> BlobInfo | None:
        """Size and media type of a stored object, or None when there is none."""
        try:
            out = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return BlobInfo(int(out["ContentLength"]), out.get("ContentType"))

    def delete(self, *keys: str | None) -> None:
        wanted: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys if k]
        if wanted:
            self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": wanted, "Quiet": True})

    def presign(self, key: str, seconds: int, filename: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)

    def presign_put(self, key: str, seconds: int) -> str:
        """A URL a worker uploads a result to (no credentials of its own)."""
        return self._s3.generate_presigned_url(
            "put_object", ExpiresIn=seconds, Params={"Bucket": self._bucket, "Key": key})
