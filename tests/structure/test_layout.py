"""The package's shape: no import cycles, a small import, nothing but the library installed, thin scripts."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.structure.import_scan import imports, module_name

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tglc_zoo"


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, imports inside functions included."""
    files = {module_name(p, REPO): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for imp in imports(path, mod):
            for t in (imp.module, *imp.names):
                while t and t not in files:
                    t = t.rpartition(".")[0]
                # a submodule importing its own package's __init__ is not an edge of the graph
                if t and t != mod and not (mod.startswith(t + ".") and files[t].name == "__init__.py"):
                    graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_in_the_package() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_package_never_imports_experiments_benchmarks_or_training_extras() -> None:
    banned = ("experiments", "benchmarks")
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not any(n.split(".")[0] in banned for n in names), f"{path} imports {names}"


def test_import_loads_no_training_extras() -> None:
    # (tqdm is not checked: huggingface_hub, and so timm, import it themselves)
    code = ("import sys, tglc_zoo; m = tglc_zoo.create_model('wrn16_2'); "
            "print(sorted(k for k in ('matplotlib', 'sklearn', 'experiments', 'benchmarks') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_scripts_are_thin_and_do_not_edit_sys_path() -> None:
    for path in (REPO / "scripts").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "sys.path" not in text, path
        assert len(text.splitlines()) < 120, f"{path} is not a thin CLI"


@pytest.mark.slow
def test_wheel_holds_only_the_library(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    skip = shutil.ignore_patterns(".git", "runs", "data", "build", "__pycache__", "*.egg-info")
    shutil.copytree(REPO, src, ignore=skip)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next(tmp_path.glob("tglc_zoo-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"tglc_zoo", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert not [n for n in names if n.endswith((".safetensors", ".pt", ".pth", ".png"))]
    assert "tglc_zoo/weights/manifest.json" in names and "tglc_zoo/layers/gc2l_impl_table.json" in names
    # installed without the repository, it imports and builds models
    target = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                          str(wheel)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    code = "import tglc_zoo; print(tglc_zoo.__file__); print(tglc_zoo.create_model('wrn16_2_gc2l_n4').num_classes)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[0].startswith(str(target)) and run.stdout.splitlines()[1] == "10"


def test_tests_folders_are_what_the_readme_says() -> None:
    """README's Layout row for tests/ names every test folder, and every part of the package is either a folder
    or named there with the folder it is tested in."""
    from tests.structure.floors import FLOORS

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| – | `tests/` |"))
    named = re.findall(r"`([^`]+)`", row.split("|")[3])
    folders = {n.removesuffix("/") for n in named if n.endswith("/")}
    on_disk = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == on_disk
    parts = {p.split(".")[1] for p in FLOORS if p.startswith("tglc_zoo.")}
    extras = {"experiments", "benchmarks", "structure", "support"}
    assert on_disk - extras <= parts, on_disk - extras - parts
    assert parts - on_disk - set(named) == set(), "a part of the package with no place for its tests in README"
