"""Shared assertions of the N=2 and N=4 equivalence suites."""
from __future__ import annotations

from typing import Any

TOL = {"float64": 1e-10, "float32": 1e-5}


def check_case(results: list[Any], key: str, world: int) -> None:
    dtype = key.split(":")[3]
    tol = TOL[dtype]
    for rank, res in enumerate(results):
        r = res.value[key]
        for mode in ("train", "eval"):
            m = r[mode]
            assert m["grads_checked"] > 0
            for what in ("logits", "loss", "grad", "buffers"):
                assert m[what] <= tol, (f"rank {rank} {key} {mode}: {what} differs from the single-process model by "
                                        f"{m[what]:.3g} > {tol:g} (worst grad: {m['worst_grad']})")
        assert r["full_keys_match"], f"rank {rank} {key}: full_state_dict keys differ from create_model's"
        assert r["steps"] == int(key.split(":")[4])
        assert r["sgd_local"] <= tol and r["sgd_full"] <= tol, (
            f"rank {rank} {key}: after 3 SGD steps weights differ by {r['sgd_local']:.3g} (local) / "
            f"{r['sgd_full']:.3g} (full) > {tol:g}")
        # every rank holds exactly 1/N of the split layers' parameters
        assert r["params"]["sharded"] * world == r["full_sharded_params"], r["params"]
