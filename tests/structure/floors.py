"""The floor table, written once: every place of the repository and its floor. An import may go to the same
floor or below, never up (``test_floors.py`` checks every import, imports inside functions included, and
that README.md's Layout table says the same).

A place is a module or a package, named as it is imported; a module's place is the longest place its name
starts with. This is SPEC §8's house as the package really is: floor 3 is the registry with the builder,
the architectures and the weights manifest it reads; ``backbones``, ``export`` and ``param_counts`` join
floor 4; ``data`` is a package and ``paper`` (tables as data) sits beside it on floor 1; ``errors`` and
``util`` are floor 0; the package's own ``__init__`` (its public names, re-exported from floors 1-4) is on
floor 5 with the scripts, so nothing inside the package imports it.
"""
from __future__ import annotations

FLOORS: dict[str, int] = {
    "experiments": 6, "benchmarks": 6,
    "scripts": 5, "hubconf": 5, "tglc_zoo": 5,
    "tglc_zoo.training": 4, "tglc_zoo.distributed": 4, "tglc_zoo.convert": 4, "tglc_zoo.backbones": 4,
    "tglc_zoo.pretrained": 4, "tglc_zoo.export": 4, "tglc_zoo.param_counts": 4,
    "tglc_zoo.registry": 3, "tglc_zoo.builder": 3, "tglc_zoo.archs": 3, "tglc_zoo.weights": 3,
    "tglc_zoo.models": 2,
    "tglc_zoo.layers": 1, "tglc_zoo.checkpoint": 1, "tglc_zoo.data": 1, "tglc_zoo.paper": 1,
    "tglc_zoo.errors": 0, "tglc_zoo.util": 0,
}


def place_of(module: str) -> str | None:
    """The longest place ``module`` is in (``tglc_zoo.layers.flgc`` -> ``tglc_zoo.layers``), else None."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in FLOORS:
            return ".".join(parts[:n])
    return None
