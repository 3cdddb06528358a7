"""The paper's tables (Lee, Park, Lee: Two-level group convolution, Neural Networks 154, 2022), shipped as data."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def paper_tables() -> dict[str, Any]:
    """Tables 1–4 and the training recipes, exactly as printed in the paper."""
    return json.loads(resources.files(__package__).joinpath("tables.json").read_text(encoding="utf-8"))
