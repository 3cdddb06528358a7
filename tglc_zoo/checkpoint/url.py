"""Weights files named by URL (``https://``, ``http://``, ``file://``), cached as torch.hub caches them.

Files land in ``torch.hub.get_dir()/checkpoints`` under their own name (in a sub-folder named by
the URL's hash when the name carries no hash, as ``model.safetensors`` from two hosts would
collide). As in torch.hub's
``check_hash``, a name of the form ``<stem>-<hex>.<ext>`` carries a sha256 prefix that the file
must match; a manifest may also give the full sha256. A mismatch is an error and the bad download
is not kept. Downloads time out (:func:`fetch`: connect, read and stall timeouts, 30 s by default,
``$TGLC_ZOO_DOWNLOAD_TIMEOUT``); a ``file://`` URL is read in place.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import torch.hub

from ..errors import CheckpointNotFoundError, DownloadTimeoutError, HashMismatchError
from ..util.atomic import atomic_path
from ..util.hashing import sha256_file

URL_SCHEMES: tuple[str, ...] = ("https", "http", "file")


def is_url(source: str) -> bool:
    return urlparse(source).scheme in URL_SCHEMES and "://" in source


def hash_prefix_of(filename: str) -> str | None:
    """The sha256 prefix torch.hub reads from ``<stem>-<hex>.<ext>`` file names, else ``None``."""
    m = torch.hub.HASH_REGEX.search(filename)
    return m.group(1) if m and m.group(1) else None


def check_sha256(path: str | Path, *, prefix: str | None = None, sha256: str | None = None,
                 origin: str | None = None) -> None:
    """Raise :class:`HashMismatchError` unless ``path`` hashes to ``sha256`` and starts with ``prefix``."""
    if prefix is None and sha256 is None:
        return
    digest = sha256_file(path)
    for expected, how in ((sha256, "the expected sha256"), (prefix, "the sha256 prefix in its file name")):
        if expected is not None and not digest.startswith(expected.lower()):
            raise HashMismatchError(f"{origin or path}: sha256 {digest} does not match {how} ({expected})")


DEFAULT_TIMEOUT = 30.0
TIMEOUT_ENV = "TGLC_ZOO_DOWNLOAD_TIMEOUT"
# a download that brings fewer bytes than this within one timeout window is stalled (a trickling server)
MIN_BYTES_PER_WINDOW = 1024
_CHUNK = 1 << 16


def download_timeout(timeout: float | None = None) -> float:
    """``timeout``, else ``$TGLC_ZOO_DOWNLOAD_TIMEOUT``, else 30 seconds."""
    if timeout is None:
        text = os.environ.get(TIMEOUT_ENV)
        try:
            timeout = float(text) if text else DEFAULT_TIMEOUT
        except ValueError:
            raise ValueError(f"${TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    if not 0 < timeout < float("inf"):
        raise ValueError(f"download timeout must be a positive number of seconds, got {timeout!r}")
    return timeout


def fetch(url: str, dest: Path, *, timeout: float | None = None) -> None:
    """Download ``url`` to ``dest`` with a connect timeout and a stall timeout.

    ``timeout`` (seconds) bounds connecting and every read; a download that receives fewer than
    :data:`MIN_BYTES_PER_WINDOW` bytes within any ``timeout``-long window is stalled too (a server
    that trickles bytes never trips a per-read timeout). Either raises :class:`DownloadTimeoutError`.
    """
    limit = download_timeout(timeout)
    request = urllib.request.Request(url, headers={"User-Agent": "tglc_zoo"})
    try:
        with urllib.request.urlopen(request, timeout=limit) as response, dest.open("wb") as out:
            window_start, window_bytes = time.monotonic(), 0
            while True:
                block = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
                if not block:
                    break
                out.write(block)
                window_bytes += len(block)
                now = time.monotonic()
                if now - window_start >= limit:
                    if window_bytes < MIN_BYTES_PER_WINDOW:
                        raise DownloadTimeoutError(
                            f"{url}: the download stalled: {window_bytes} bytes in the last {now - window_start:.0f} s "
                            f"(timeout {limit:g} s; set ${TIMEOUT_ENV} to wait longer)")
                    window_start, window_bytes = now, 0
    except TimeoutError as e:
        raise DownloadTimeoutError(f"{url}: no answer within {limit:g} s ({e}); the server is down or stalled "
                                   f"(set ${TIMEOUT_ENV} to wait longer)") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (TimeoutError, socket.timeout)):
            raise DownloadTimeoutError(f"{url}: no connection within {limit:g} s "
                                       f"(set ${TIMEOUT_ENV} to wait longer)") from None
        raise CheckpointNotFoundError(f"could not download {url}: {e}") from None
    except OSError as e:
        raise CheckpointNotFoundError(f"could not download {url}: {e}") from None


def cached_download(url: str, *, cache_dir: str | os.PathLike[str] | None = None, sha256: str | None = None,
                    local_files_only: bool = False, timeout: float | None = None) -> Path:
    """A local copy of ``url``: an ``https://``/``http://`` file from the torch.hub checkpoint cache
    (downloaded if absent, with :func:`fetch`'s timeouts), a ``file://`` URL as the file itself (never
    a cached copy that could go stale)."""
    parts = urlparse(url)
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}; valid schemes: {list(URL_SCHEMES)}")
    filename = os.path.basename(unquote(parts.path))
    if not filename:
        raise ValueError(f"URL {url!r} does not end in a file name")
    prefix = hash_prefix_of(filename)
    if parts.scheme == "file":
        local = Path(unquote(parts.path))
        if not local.is_file():
            raise CheckpointNotFoundError(f"{url}: no such file")
        check_sha256(local, prefix=prefix, sha256=sha256, origin=url)
        return local
    folder = Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    if prefix is None:  # names like model.safetensors are not unique across URLs: keep them apart
        folder = folder / hashlib.sha256(url.encode()).hexdigest()[:16]
    cached = folder / filename
    if cached.is_file():
        check_sha256(cached, prefix=prefix, sha256=sha256,
                     origin=f"{cached} (cached copy of {url}; delete it to download again)")
        return cached
    if local_files_only:
        raise CheckpointNotFoundError(f"{url} is not in the cache ({cached}) and local_files_only is set")
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(cached) as staging:  # only a complete, verified file ever takes the cache name
        fetch(url, staging, timeout=timeout)
        check_sha256(staging, prefix=prefix, sha256=sha256, origin=url)
    return cached
