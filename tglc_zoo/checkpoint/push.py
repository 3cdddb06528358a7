"""Uploading a checkpoint folder to the Hugging Face Hub (``create_repo`` + ``upload_folder``), and keeping a
repo in sync with a folder (:func:`sync_folder`: a commit only when a file differs)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

from .hf import split_repo_id


def upload_checkpoint_folder(folder: str | os.PathLike[str], repo_id: str, *, private: bool = False,
                             revision: str | None = None, commit_message: str = "Upload tglc_zoo checkpoint",
                             token: str | None = None, endpoint: str | None = None) -> str:
    """Create ``repo_id`` if needed (and ``revision`` as a branch) and upload the folder's files.

    Returns the URL of the commit. ``endpoint`` defaults to huggingface_hub's (``HF_ENDPOINT``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {folder}")
    repo_id, revision = split_repo_id(repo_id, revision)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, repo_type="model",
                             commit_message=commit_message)
    return str(info.commit_url)


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_folder` found (and did): the files that differ from the repo, and the commit made."""

    repo_id: str
    changed: tuple[str, ...]
    created_repo: bool
    commit_url: str | None

    @property
    def up_to_date(self) -> bool:
        return not self.changed and not self.created_repo


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def remote_differences(folder: Path, repo_id: str, api: HfApi, revision: str | None = None) -> tuple[bool, list[str]]:
    """``(repo exists, files of folder whose content the repo lacks)``, compared by content hash: the git
    blob id of a regular file, the sha256 of an LFS one."""
    local = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except RepositoryNotFoundError:
        return False, sorted(local)
    except RevisionNotFoundError:
        return True, sorted(local)
    remote = {s.rfilename: s for s in info.siblings or []}
    changed = []
    for name, data in local.items():
        sib = remote.get(name)
        if sib is None:
            changed.append(name)
        elif sib.lfs is not None:
            if sib.lfs.sha256 != hashlib.sha256(data).hexdigest():
                changed.append(name)
        elif sib.blob_id != _git_blob_sha1(data):
            changed.append(name)
    return True, changed


def sync_folder(folder: str | os.PathLike[str], repo_id: str, *, dry_run: bool = False, private: bool = False,
                revision: str | None = None, commit_message: str = "Update tglc_zoo checkpoint",
                token: str | None = None, endpoint: str | None = None) -> SyncResult:
    """Make ``repo_id`` hold ``folder``'s files: create the repo if missing and upload only when a file
    differs, so an unchanged folder makes no commit. ``dry_run`` reports without changing anything."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {folder}")
    repo_id, revision = split_repo_id(repo_id, revision)
    api = HfApi(endpoint=endpoint, token=token)
    exists, changed = remote_differences(folder, repo_id, api, revision)
    if dry_run or (exists and not changed):
        return SyncResult(repo_id, tuple(changed), not exists, None)
    url = upload_checkpoint_folder(folder, repo_id, private=private, revision=revision, commit_message=commit_message,
                                   token=token, endpoint=endpoint)
    return SyncResult(repo_id, tuple(changed), not exists, url)
