"""Dependencies point down: every import (imports inside functions included) goes to the same floor or below,
by the one floor table (floors.py), and README.md's Layout table is that table."""
from __future__ import annotations

import re
from pathlib import Path

from tests.structure.floors import FLOORS, place_of
from tests.structure.import_scan import Import, imports, module_name

REPO = Path(__file__).resolve().parents[2]
TOPS = ("tglc_zoo", "experiments", "benchmarks", "scripts")


def repo_modules(root: Path) -> dict[str, Path]:
    """Every module of the package, the studies, the benchmarks, the scripts and hubconf.py under ``root``."""
    files = [p for top in TOPS for p in sorted((root / top).rglob("*.py"))]
    files += [root / "hubconf.py"] if (root / "hubconf.py").is_file() else []
    return {module_name(p, root): p for p in files}


def _targets(imp: Import, modules: dict[str, Path]) -> list[str]:
    """What an import reaches: the module it names, or for ``from m import a`` the submodule ``m.a`` if a is one."""
    return [n if n in modules else imp.module for n in imp.names] if imp.names else [imp.module]


def climbs(root: Path) -> list[str]:
    """Every import under ``root`` that goes to a higher floor, as ``file:line: what imports what``."""
    modules = repo_modules(root)
    out = []
    for mod, path in modules.items():
        here = place_of(mod)
        assert here is not None, mod
        for imp in imports(path, mod):
            for target in _targets(imp, modules):
                there = place_of(target)
                if there is not None and FLOORS[there] > FLOORS[here]:
                    out.append(f"{path.relative_to(root)}:{imp.line}: {mod} (floor {FLOORS[here]}) imports {target} "
                               f"(floor {FLOORS[there]})")
    return out


def test_every_import_goes_to_the_same_floor_or_below() -> None:
    assert len(repo_modules(REPO)) > 150  # the walk found the repository
    assert climbs(REPO) == []


def test_the_floor_check_finds_a_climb(tmp_path: Path) -> None:
    files = {
        "tglc_zoo/__init__.py": "from .registry import create_model\n",
        "tglc_zoo/registry.py": "from .layers import conv\n",
        "tglc_zoo/layers/__init__.py": "",
        "tglc_zoo/layers/conv.py": "import torch\nfrom . import flops\n\n\ndef build():\n"
                                   "    from ..registry import create_model\n    return create_model\n",
        "tglc_zoo/layers/flops.py": "from tglc_zoo import create_model\n",
        "scripts/train.py": "import tglc_zoo\nfrom experiments.study import run\n",
        "experiments/study.py": "import benchmarks.tables\n",
        "benchmarks/tables.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert climbs(tmp_path) == [
        "tglc_zoo/layers/conv.py:6: tglc_zoo.layers.conv (floor 1) imports tglc_zoo.registry (floor 3)",
        "tglc_zoo/layers/flops.py:1: tglc_zoo.layers.flops (floor 1) imports tglc_zoo (floor 5)",
        "scripts/train.py:2: scripts.train (floor 5) imports experiments.study (floor 6)",
    ]


def test_every_module_of_the_package_has_a_floor_of_its_own() -> None:
    """A new top-level module or package of tglc_zoo gets its row in the table (else it would be the root's)."""
    modules = repo_modules(REPO)
    assert [m for m in modules if m.startswith("tglc_zoo.") and place_of(m) == "tglc_zoo"] == []
    assert [p for p in FLOORS if not any(m == p or m.startswith(p + ".") for m in modules)] == []  # none stale


def _readme_floors() -> dict[str, int]:
    """Place -> floor, from the rows of README.md's Layout table (`` `tglc_zoo/layers/` `` -> tglc_zoo.layers)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, int] = {}
    for floor, cell in re.findall(r"^\| (\d) \| ([^|]+) \|", section, re.M):
        for path in re.findall(r"`([^`]+)`", cell):
            out[path.removesuffix("/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")] = int(floor)
    return out


def test_readme_layout_table_is_the_floor_table() -> None:
    assert _readme_floors() == FLOORS
