"""Uploading a checkpoint folder to the Hugging Face Hub (``create_repo`` + ``upload_folder``)."""
from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi

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
