"""A key namespace of its own for every start of the workers under ``torchrun``, so restarts can join.

``torchrun`` keeps one TCPStore for the whole job (the agent's store, ``TORCHELASTIC_USE_AGENT_STORE``) and
hands every restarted round of workers the same address. ``init_process_group`` then writes and reads the
same keys as the round before it, and gloo's ``connectFullMesh`` can read a dead worker's address before
the new worker has overwritten it: the restarted workers fail with "Connection refused" / "Connect
timeout" (torch 2.14, static and c10d rendezvous alike; a torch-only script shows it). The restart count
cannot name the round either: on several nodes it differs between agents.

:func:`round_store` agrees on a fresh prefix without trusting any value a previous round may have left:

* global rank 0 draws a random token ``T``;
* every other rank writes a random nonce of its own under ``tglc/join/<rank>`` and waits for
  ``tglc/welcome/<nonce>`` — a key no earlier round can have written;
* rank 0 keeps reading ``tglc/join/<rank>`` and answers every value it sees with ``T`` (a stale nonce gets an
  answer nobody waits for), until every rank has confirmed under ``tglc/<T>/joined/<rank>``.

Everyone then uses ``PrefixStore("tglc/<T>", store)``: no key of an earlier round is visible there.
"""
from __future__ import annotations

import datetime
import os
import secrets
import time

import torch.distributed as dist

from ..errors import CollectiveError

__all__ = ["agent_store", "round_store"]

_POLL_S = 0.02


def agent_store(timeout: datetime.timedelta) -> dist.Store | None:
    """A client of torchrun's agent store (``MASTER_ADDR:MASTER_PORT``), or ``None`` outside torchelastic."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() != "true":
        return None
    return dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                         int(os.environ["WORLD_SIZE"]), is_master=False, timeout=timeout)


def _deadline_error(what: str, timeout: datetime.timedelta) -> CollectiveError:
    return CollectiveError(f"rendezvous of the restarted workers timed out after {timeout.total_seconds():.0f} s "
                           f"({what}); a worker did not start, or the store at {os.environ.get('MASTER_ADDR')}:"
                           f"{os.environ.get('MASTER_PORT')} is unreachable")


def round_store(store: dist.Store, rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Store:
    """``store`` under a prefix that only this start of the ``world_size`` workers uses (see the module doc)."""
    deadline = time.monotonic() + timeout.total_seconds()
    if rank != 0:
        nonce = secrets.token_hex(16)
        store.set(f"tglc/join/{rank}", nonce)
        welcome = f"tglc/welcome/{nonce}"
        while not store.check([welcome]):
            if time.monotonic() > deadline:
                raise _deadline_error(f"rank {rank} waited for rank 0", timeout)
            time.sleep(_POLL_S)
        token = store.get(welcome).decode()
        store.set(f"tglc/{token}/joined/{rank}", "1")
        return dist.PrefixStore(f"tglc/{token}", store)
    token = secrets.token_hex(16)
    answered: dict[int, set[str]] = {r: set() for r in range(1, world_size)}
    pending = set(answered)
    while pending:
        for r in sorted(pending):
            if store.check([f"tglc/join/{r}"]):
                nonce = store.get(f"tglc/join/{r}").decode()
                if nonce not in answered[r]:
                    store.set(f"tglc/welcome/{nonce}", token)
                    answered[r].add(nonce)
            if store.check([f"tglc/{token}/joined/{r}"]):
                pending.discard(r)
        if pending:
            if time.monotonic() > deadline:
                raise _deadline_error(f"ranks {sorted(pending)[:8]} never joined", timeout)
            time.sleep(_POLL_S)
    return dist.PrefixStore(f"tglc/{token}", store)
