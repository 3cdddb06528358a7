#!/usr/bin/env python3
"""Push every shipped checkpoint folder (hub/<model>.<tag>/) to its Hugging Face Hub repo, as named in the
weights manifest (one repo per tag under the project's organisation). Idempotent: a repo that already
holds the folder's files gets no commit. ``--dry-run`` lists what would change.

    python scripts/publish_zoo.py --dry-run
    HF_TOKEN=... python scripts/publish_zoo.py [--only 'wrn16_2_gc2l*']
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

from tglc_zoo.checkpoint import sync_folder
from tglc_zoo.errors import TglcZooError
from tglc_zoo.weights import load_manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="list what would change; create and upload nothing")
    p.add_argument("--only", default="*", help="wildcard over '<model>.<tag>' names")
    p.add_argument("--private", action="store_true", help="create missing repos as private")
    args = p.parse_args(argv)
    entries = {t: e for t, e in load_manifest(include_unavailable=True).items()
               if fnmatch.fnmatch(t, args.only) and e.get("hf_hub_id") and e.get("file")}
    missing = [t for t, e in entries.items() if not Path(e["file"]).is_dir()]
    if missing:
        print(f"publish_zoo: error: no local folder for {missing} (run from a clone of the repository)",
              file=sys.stderr)
        return 2
    for tag, entry in sorted(entries.items()):
        try:
            result = sync_folder(entry["file"], entry["hf_hub_id"], dry_run=args.dry_run, private=args.private,
                                 commit_message=f"tglc_zoo: {tag} (sha256 {entry['sha256'][:12]})")
        except (TglcZooError, OSError, ValueError) as exc:
            print(f"publish_zoo: error: {tag}: {exc}", file=sys.stderr)
            return 2
        if result.up_to_date:
            print(f"{tag}: {result.repo_id} is up to date")
        else:
            what = ("create the repo and upload " if result.created_repo else "upload ") + ", ".join(result.changed)
            done = "would " + what if args.dry_run else f"{what} -> {result.commit_url}"
            print(f"{tag}: {result.repo_id}: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
