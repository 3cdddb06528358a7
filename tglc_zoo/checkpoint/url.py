"""Weights files named by URL (``https://``, ``http://``, ``file://``), cached as torch.hub caches them.

Files land in ``torch.hub.get_dir()/checkpoints`` under their own name (in a sub-folder named by
the URL's hash when the name carries no hash, as ``model.safetensors`` from two hosts would
collide). As in torch.hub's
``check_hash``, a name of the form ``<stem>-<hex>.<ext>`` carries a sha256 prefix that the file
must match; a manifest may also give the full sha256. A mismatch is an error and the bad download
is not kept.
"""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

import torch.hub

from ..errors import CheckpointNotFoundError, HashMismatchError
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


def cached_download(url: str, *, cache_dir: str | os.PathLike[str] | None = None, sha256: str | None = None,
                    local_files_only: bool = False) -> Path:
    """Return a local copy of ``url`` from the torch.hub checkpoint cache, downloading it if absent."""
    parts = urlparse(url)
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}; valid schemes: {list(URL_SCHEMES)}")
    filename = os.path.basename(unquote(parts.path))
    if not filename:
        raise ValueError(f"URL {url!r} does not end in a file name")
    folder = Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    prefix = hash_prefix_of(filename)
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
    staging = folder / f".{filename}.{uuid.uuid4().hex[:8]}.download"
    try:
        try:
            torch.hub.download_url_to_file(url, os.fspath(staging), hash_prefix=None, progress=False)
        except OSError as e:  # urllib's URLError/HTTPError included
            raise CheckpointNotFoundError(f"could not download {url}: {e}") from None
        check_sha256(staging, prefix=prefix, sha256=sha256, origin=url)
        os.replace(staging, cached)  # only a verified file ever takes the cache name
    finally:
        staging.unlink(missing_ok=True)
    return cached
