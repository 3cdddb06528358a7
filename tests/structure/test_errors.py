"""Every exception class the package defines is in the one hierarchy (``tglc_zoo.errors.TglcZooError``)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import tglc_zoo
from tglc_zoo.errors import TglcZooError


def _package_errors() -> dict[str, type[BaseException]]:
    """Every public exception class defined in a module of the package, by its dotted name."""
    out = {}
    for info in pkgutil.walk_packages(tglc_zoo.__path__, "tglc_zoo."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__
                    and not name.startswith("_")):
                out[f"{module.__name__}.{name}"] = obj
    return out


def test_every_error_of_the_package_derives_from_tglc_zoo_error() -> None:
    errors = _package_errors()
    assert len(errors) >= 20 and "tglc_zoo.distributed.launch.LaunchError" in errors  # the walk found them
    assert [name for name, cls in errors.items() if not issubclass(cls, TglcZooError)] == []


def test_launch_error_is_still_a_runtime_error() -> None:
    from tglc_zoo.distributed.launch import LaunchError

    assert issubclass(LaunchError, RuntimeError) and issubclass(LaunchError, TglcZooError)
