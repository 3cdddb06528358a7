"""Files of a Hugging Face Hub model repo, through huggingface_hub (its cache, revisions, offline mode).

``local_files_only=None`` keeps huggingface_hub's own default, so ``HF_HUB_OFFLINE=1`` serves
files from the cache (``models--org--name/{blobs,refs,snapshots}``) without touching the network.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TypedDict

from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import CheckpointNotFoundError, HubFileNotFoundError

HF_PREFIX = "hf-hub:"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?")  # whole string only (fullmatch)


MAX_NAME_LENGTH = 96  # the Hub's limit on an organisation or repository name


def _valid(repo: str) -> bool:
    if _REPO_ID.fullmatch(repo) is None:
        return False
    org, _, name = repo.partition("@")[0].partition("/")
    return len(org) <= MAX_NAME_LENGTH and len(name) <= MAX_NAME_LENGTH and len(repo) <= 1024


def is_hf_repo_id(source: str) -> bool:
    """``hf-hub:org/name[@revision]`` or a bare ``org/name[@revision]`` (names of at most 96 characters)."""
    return _valid(source.removeprefix(HF_PREFIX))


def split_repo_id(source: str, revision: str | None = None) -> tuple[str, str | None]:
    """``("org/name", revision)`` from ``[hf-hub:]org/name[@revision]``; an explicit ``revision`` wins."""
    repo_id = source.removeprefix(HF_PREFIX)
    if not _valid(repo_id):
        raise ValueError(f"{source[:200]!r} is not a Hugging Face repo id; expected 'org/name' or 'hf-hub:org/name' "
                         f"(each part at most {MAX_NAME_LENGTH} characters)")
    repo_id, _, inline = repo_id.partition("@")
    return repo_id, revision or inline or None


def download_failure(error: BaseException, local_files_only: bool | None = None) -> str:
    """Why huggingface_hub could not download: the offline flag, or the network's own error at the end of
    the exception chain (a DNS failure, a refused connection, a timeout), with the endpoint it tried."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if local_files_only:
        return "local_files_only=True forbids downloading"
    if constants.HF_HUB_OFFLINE or any(isinstance(c, OfflineModeIsEnabled) for c in chain):
        return "the machine is offline for the Hub (HF_HUB_OFFLINE is set)"
    root = chain[-1]
    return (f"{constants.ENDPOINT} could not be reached ({type(root).__name__}: {root}; huggingface_hub retried "
            "before giving up)")


class _DownloadOptions(TypedDict, total=False):
    """The optional ``hf_hub_download`` arguments passed only when set (typed, so its overloads resolve)."""

    local_files_only: bool


def hf_file(repo_id: str, filename: str, *, revision: str | None = None, cache_dir: str | Path | None = None,
            local_files_only: bool | None = None) -> Path:
    """Path of ``filename`` of the repo at ``revision`` in the HF cache, fetched if needed and allowed."""
    kwargs: _DownloadOptions = {} if local_files_only is None else {"local_files_only": local_files_only}
    where = f"{filename} of hf-hub:{repo_id}" + (f"@{revision}" if revision else "")
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                    library_name="tglc_zoo", **kwargs))
    except LocalEntryNotFoundError as e:
        raise CheckpointNotFoundError(
            f"{where} is not in the Hugging Face cache ({cache_dir or constants.HF_HUB_CACHE}) and was not "
            f"downloaded: {download_failure(e, local_files_only)}") from None
    except HFValidationError as e:
        raise CheckpointNotFoundError(f"{where}: not a valid Hugging Face repo id or revision ({e})") from None
    except RepositoryNotFoundError:
        raise CheckpointNotFoundError(f"Hugging Face repo {repo_id!r} does not exist or is not accessible") from None
    except RevisionNotFoundError:
        raise CheckpointNotFoundError(f"revision {revision!r} does not exist in hf-hub:{repo_id}") from None
    except EntryNotFoundError:
        raise HubFileNotFoundError(f"{where}: no such file in the repo") from None
    except HfHubHTTPError as e:
        raise CheckpointNotFoundError(f"{where}: download failed ({e})") from None


def cached_hf_file(repo_id: str, filename: str, *, revision: str | None = None,
                   cache_dir: str | Path | None = None) -> Path | None:
    """Path of ``filename`` of the repo at ``revision`` when it is in the HF cache already (never downloads)."""
    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    return Path(found) if isinstance(found, str) else None
