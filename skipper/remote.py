"""Object storage: plan ``s3://`` files from their footers alone.

Planning a remote file costs one HEAD (size, ETag, Last-Modified), one ranged
GET of the file's last 64 KiB (a second one only when the Parquet footer is
larger) and one more HEAD to make sure the object did not change while its
footer was read. Row groups are never read during planning. The query itself
keeps its ``s3://`` paths and is read by DuckDB's httpfs extension, which is
loaded offline from the ``duckdb-extension-httpfs`` wheel.

Credentials: ``S3Options`` configures both sides (a DuckDB secret and a
``pyarrow.fs.S3FileSystem``). Without it, the planner's filesystem follows
pyarrow's default AWS chain (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...)
and DuckDB uses whatever secret the user created; a file the planner cannot
read is read in full (a ``SkippingFallbackWarning``), never skipped.
"""

from __future__ import annotations

import importlib
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from mlskip.errors import MlskipError

S3_PREFIXES = ("s3://", "s3a://", "s3n://")
TAIL_BYTES = 64 * 1024
_HTTPFS_PACKAGE = "duckdb_extension_httpfs"


def is_s3(path: str) -> bool:
    """True for ``s3://``, ``s3a://`` and ``s3n://`` paths."""
    return path.lower().startswith(S3_PREFIXES)


def s3_key(path: str) -> str:
    """``bucket/key`` of an ``s3://bucket/key`` path (what pyarrow's S3 filesystem takes)."""
    return path.split("://", 1)[1]


@dataclass(frozen=True)
class S3Options:
    """S3 (or S3-compatible) access for planning and for DuckDB.

    ``endpoint``: ``"http://127.0.0.1:9000"``, ``"https://host"`` or ``"host:port"``
    (https unless the scheme says http); None for AWS. ``url_style``: ``"path"``
    or ``"vhost"`` (default: path with a custom endpoint, vhost on AWS). Without
    ``access_key``, the keys come from ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``; without those, requests
    are unsigned (public buckets) on both sides.
    """

    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    region: str = "us-east-1"
    endpoint: str | None = None
    url_style: str | None = None

    @classmethod
    def coerce(cls, value: S3Options | Mapping[str, Any] | None) -> S3Options | None:
        """``value`` as options (a mapping gives the fields by name)."""
        if value is None or isinstance(value, S3Options):
            return value
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise MlskipError(
                f"unknown S3 option(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**dict(value))

    def keys(self) -> tuple[str | None, str | None, str | None]:
        """(access key, secret key, session token), from the environment if not given."""
        if self.access_key is not None:
            return self.access_key, self.secret_key or "", self.session_token
        env = os.environ
        if env.get("AWS_ACCESS_KEY_ID"):
            secret = env.get("AWS_SECRET_ACCESS_KEY", "")
            return env["AWS_ACCESS_KEY_ID"], secret, env.get("AWS_SESSION_TOKEN")
        return None, None, None

    @property
    def use_ssl(self) -> bool:
        return not (self.endpoint or "").lower().startswith("http://")

    @property
    def host(self) -> str | None:
        """The endpoint without its scheme (``host:port``)."""
        if self.endpoint is None:
            return None
        return re.sub(r"^https?://", "", self.endpoint, flags=re.I).rstrip("/")

    @property
    def style(self) -> str:
        return self.url_style or ("path" if self.endpoint else "vhost")

    def filesystem(self) -> Any:
        """A ``pyarrow.fs.S3FileSystem`` with these options."""
        kwargs: dict[str, Any] = {"region": self.region}
        key, secret, token = self.keys()
        if key is not None:
            kwargs.update(access_key=key, secret_key=secret)
            if token:
                kwargs["session_token"] = token
        else:
            kwargs["anonymous"] = True
        if self.endpoint is not None:
            kwargs.update(endpoint_override=self.host, scheme="https" if self.use_ssl else "http")
        if self.style == "vhost" and self.endpoint is not None:
            kwargs["force_virtual_addressing"] = True
        return _fail_fast_s3(**kwargs)

    def duckdb_secret_sql(self, name: str = "mlskip_s3") -> str:
        """``CREATE OR REPLACE SECRET`` for DuckDB's httpfs with these options."""

        def q(v: str) -> str:
            return "'" + v.replace("'", "''") + "'"

        parts = ["TYPE s3", f"REGION {q(self.region)}", f"URL_STYLE {q(self.style)}"]
        key, secret, token = self.keys()
        if key is not None:
            parts += [f"KEY_ID {q(key)}", f"SECRET {q(secret or '')}"]
            if token:
                parts.append(f"SESSION_TOKEN {q(token)}")
        if self.endpoint is not None:
            parts += [f"ENDPOINT {q(self.host or '')}", f"USE_SSL {str(self.use_ssl).lower()}"]
        return f"CREATE OR REPLACE SECRET {name} ({', '.join(parts)})"


def _fail_fast_s3(**kwargs: Any) -> Any:
    """pyarrow's S3 filesystem that fails fast instead of retrying for minutes (the one
    retry policy of planning reads): a failed planning read only means a full read, and
    DuckDB reports the real error."""
    from pyarrow import fs as pafs

    retry = pafs.AwsStandardS3RetryStrategy(max_attempts=2)
    return pafs.S3FileSystem(connect_timeout=5, request_timeout=30, retry_strategy=retry, **kwargs)


def default_filesystem() -> Any:
    """pyarrow's S3 filesystem with its default AWS chain (environment, ~/.aws), and
    ``AWS_ENDPOINT_URL`` / ``AWS_REGION`` when set."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    kwargs: dict[str, Any] = {"region": region}
    if endpoint:
        opts = S3Options(endpoint=endpoint)
        kwargs.update(endpoint_override=opts.host, scheme="https" if opts.use_ssl else "http")
    return _fail_fast_s3(**kwargs)


def httpfs_extension_path() -> Path:
    """The ``httpfs.duckdb_extension`` shipped in the ``duckdb-extension-httpfs`` wheel."""
    try:
        package = importlib.import_module(_HTTPFS_PACKAGE)
    except ImportError as error:
        raise MlskipError(
            f"s3:// paths need DuckDB's httpfs extension: pip install "
            f"duckdb-extension-httpfs=={duckdb.__version__}"
        ) from error
    root = Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    path = root / "httpfs.duckdb_extension"
    if not path.is_file():
        raise MlskipError(
            f"the httpfs extension for DuckDB {duckdb.__version__} is not in {root}; install "
            f"duckdb-extension-httpfs=={duckdb.__version__}"
        )
    return path


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    """INSTALL httpfs from its wheel (offline) and LOAD it into ``con``."""
    loaded = con.execute(
        "SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'"
    ).fetchone()
    if loaded and loaded[0]:
        return
    path = str(httpfs_extension_path()).replace("'", "''")
    con.execute(f"INSTALL '{path}'")
    con.execute("LOAD httpfs")


class TailFile(io.RawIOBase):
    """A read-only file of ``size`` bytes of which only the last ``len(data)`` are held.

    Reading before the tail raises ``OSError``: a footer reader that strays into
    row-group data fails instead of fetching it.
    """

    def __init__(self, size: int, data: bytes) -> None:
        super().__init__()
        self._size = size
        self._start = size - len(data)
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self._size, self._pos + len(view))
        if end <= self._pos:
            return 0
        if self._pos < self._start:
            raise OSError(
                f"planning read bytes {self._pos}-{end} outside the footer tail "
                f"({self._start}-{self._size})"
            )
        chunk = self._data[self._pos - self._start : end - self._start]
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def _head(fs: Any, key: str) -> tuple[Any, tuple]:
    """Open ``key`` (one HEAD) and return the file with (size, ETag, Last-Modified)."""
    handle = fs.open_input_file(key)
    meta = handle.metadata() or {}

    def get(name: str) -> str:
        value = meta.get(name) or meta.get(name.encode()) or b""
        return value.decode() if isinstance(value, bytes) else str(value)

    return handle, (handle.size(), get("ETag").strip('"'), epoch_seconds(get("Last-Modified")))


def epoch_seconds(value: Any) -> int | str:
    """Last-Modified as whole seconds since 1970 (a HEAD's text and a LIST's datetime then
    compare equal); text it cannot read is kept as is."""
    import datetime
    import email.utils

    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    text = str(value)
    try:
        return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        pass
    try:
        return int(email.utils.parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError):
        return text


def list_identities(options: S3Options | None, paths: list[str]) -> dict[str, tuple]:
    """``remote_identity`` of many objects from LIST requests (one per 1,000 objects of a
    folder) instead of a HEAD each; {} when boto3 is not installed. Objects not listed
    (a folder that could not be listed included) are absent: callers HEAD them."""
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError:
        return {}
    options = options or S3Options(endpoint=os.environ.get("AWS_ENDPOINT_URL_S3")
                                   or os.environ.get("AWS_ENDPOINT_URL"))  # fmt: skip
    key, secret, token = options.keys()
    config = Config(
        signature_version=UNSIGNED if key is None else None,
        s3={"addressing_style": options.style},
        retries={"max_attempts": 2},
        connect_timeout=5,
        read_timeout=30,
    )
    endpoint = None
    if options.endpoint is not None:
        endpoint = ("https://" if options.use_ssl else "http://") + (options.host or "")
    client = boto3.client(
        "s3", region_name=options.region, endpoint_url=endpoint, aws_access_key_id=key,
        aws_secret_access_key=secret, aws_session_token=token, config=config,
    )  # fmt: skip
    folders: dict[tuple[str, str], set[str]] = {}
    for path in paths:
        bucket, _, name = s3_key(path).partition("/")
        folders.setdefault((bucket, name.rpartition("/")[0]), set()).add(path)
    found: dict[str, tuple] = {}
    scheme = {p.split("://", 1)[0] for p in paths}
    for (bucket, folder), wanted in folders.items():
        prefix = folder + "/" if folder else ""
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    for s in scheme:
                        path = f"{s}://{bucket}/{item['Key']}"
                        if path in wanted:
                            found[path] = (
                                path, int(item["Size"]), str(item.get("ETag", "")).strip('"'),
                                epoch_seconds(item["LastModified"]),
                            )  # fmt: skip
        except Exception:  # noqa: BLE001 - a folder that cannot be listed: a HEAD each
            continue
    return found


def remote_identity(fs: Any, path: str) -> tuple:
    """``(path, size, ETag, Last-Modified)`` of an object, by one HEAD."""
    handle, facts = _head(fs, s3_key(path))
    handle.close()
    return (path, *facts)


def read_remote_tail(fs: Any, path: str, tail: int = TAIL_BYTES, attempts: int = 3) -> tuple:
    """``(TailFile, identity)`` of an object: its footer bytes read while its identity held.

    Raises ``OSError`` if the object keeps changing while it is read.
    """
    key = s3_key(path)
    for _ in range(attempts):
        handle, facts = _head(fs, key)
        try:
            size = facts[0]
            if size < 12:
                raise OSError(f"{path}: {size} bytes is too small to be Parquet")
            start = max(0, size - tail)
            data = handle.read_at(size - start, start)
            footer = int.from_bytes(data[-8:-4], "little") + 8
            if data[-4:] == b"PAR1" and len(data) < footer <= size:
                data = handle.read_at(footer - len(data), size - footer) + data
        finally:
            handle.close()
        # the same object before and after the read: the bytes belong to this identity
        if remote_identity(fs, path)[1:] == facts:
            return TailFile(size, data), (path, *facts)
    raise OSError(f"{path} changed while its footer was read ({attempts} attempts)")
