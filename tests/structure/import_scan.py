"""Every import statement of a Python file, as absolute module names (relative imports resolved), imports
inside functions, methods and ``if TYPE_CHECKING:`` blocks included. Read by the structure tests."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """``import module`` (``names`` empty) or ``from module import a, b`` (``names``: ``module.a``, ``module.b``)."""

    module: str
    names: tuple[str, ...] = ()
    line: int = 0


def module_name(path: Path, root: Path) -> str:
    """``tglc_zoo/layers/flgc.py`` -> ``tglc_zoo.layers.flgc``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str) -> Iterator[Import]:
    """The imports of the file ``path``, which is the module ``module``."""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (Import(a.name, (), node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem_parts = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(stem_parts + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            yield Import(stem, tuple(f"{stem}.{a.name}" for a in node.names), node.lineno)
