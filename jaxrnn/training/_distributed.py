"""Training across processes with ``jax.distributed``: joining, and checking that every process
runs the same thing.

Several processes (on one machine, on the hosts of a TPU slice or a GPU cluster) form one JAX
program: each calls :func:`initialize` with the coordinator's address, the process count and its
own id, then runs the same code. ``jax.devices()`` then lists every process's devices, and the
training mesh (``_sharding.make_mesh``) spans them: each process assembles only its own devices'
slices of a batch, and XLA all-reduces the gradients (gloo collectives on the CPU, NCCL on GPUs,
the interconnect on TPUs). Nothing here communicates by hand; :func:`check_same` compares the
processes' settings with ``multihost_utils.process_allgather``.

Faults end a run, never hang it: processes that are not all joined within ``init_timeout`` exit
with a DistributedError message (:func:`initialize`), and a process that dies (stops sending
heartbeats for ``heartbeat_timeout`` seconds) makes JAX's distributed service terminate the
others with "Terminating process because the JAX distributed service detected fatal errors".
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from ..functional import _checks

__all__ = ["DistributedError", "check_same", "initialize", "is_primary", "parse_address"]


_GRACE_S = 10
"""Seconds jaxlib's own join deadline comes after ``init_timeout`` (when :func:`initialize` has
already stopped the process with its message)."""


class DistributedError(RuntimeError):
    """The processes of a multi-process run could not start together, or disagree."""


def parse_address(address: str, owner: str = "initialize") -> tuple[str, int]:
    """``'HOST:PORT'`` as ``(host, port)``, or a ValueError naming what is wrong.

    >>> parse_address("127.0.0.1:12355")
    ('127.0.0.1', 12355)
    """
    if not isinstance(address, str):
        raise TypeError(f"{owner}: `coordinator` must be a 'HOST:PORT' string, got {type(address).__name__}")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{owner}: `coordinator` must be 'HOST:PORT' with a port in [1, 65535], got {address!r}")
    return host, int(port)


def initialize(coordinator: str, num_processes: int, process_id: int, *, init_timeout: int = 300,
               heartbeat_timeout: int = 100) -> None:
    """Join a run of ``num_processes`` processes as process ``process_id``, with
    ``jax.distributed.initialize``; call it before anything else uses JAX.

    Args:
      coordinator: ``'HOST:PORT'`` of process 0, where it starts the coordination service (the
        same for every process).
      num_processes: the number of processes, N.
      process_id: this process's id in [0, N).
      init_timeout: seconds to wait for every process to join.
      heartbeat_timeout: seconds after which a silent process counts as dead and the others stop
        (this is also how long a finished process waits for the others at shutdown).

    A process that is not joined by all the others within ``init_timeout`` prints
    ``jaxrnn: error: DistributedError: process I of N could not start with the coordinator at ...``
    and exits with status 1 (jaxlib would abort it a little later); nothing else is left to do
    in it, as jax.distributed cannot be retried in the same process.

    Raises:
      DistributedError: when jax.distributed refuses to start (e.g. JAX already ran in this
        process), with what it reported.
    """
    owner = "initialize"
    parse_address(coordinator, owner)
    num_processes = _checks.positive_int("num_processes", num_processes, owner)
    if isinstance(process_id, bool) or not isinstance(process_id, (numbers.Integral, np.integer)):
        raise TypeError(f"{owner}: `process_id` must be an int, got {process_id!r} ({type(process_id).__name__})")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"{owner}: `process_id` must be in [0, {num_processes}) for {num_processes} processes, "
                         f"got {process_id}")
    init_timeout = _checks.positive_int("init_timeout", init_timeout, owner)
    heartbeat_timeout = _checks.positive_int("heartbeat_timeout", heartbeat_timeout, owner)
    what = (f"process {process_id} of {num_processes} could not start with the coordinator at {coordinator} within "
            f"{init_timeout} s")
    hint = ("Start every process with the same coordinator and process count, each with its own process id, within "
            "the timeout")
    joined = threading.Event()

    def give_up() -> None:  # jaxlib aborts the process at its own deadline; stop first, saying why
        if not joined.wait(init_timeout):
            sys.stderr.write(f"jaxrnn: error: DistributedError: {what}: the other processes did not all join. "
                             f"{hint}.\n")
            sys.stderr.flush()
            os._exit(1)

    threading.Thread(target=give_up, name="jaxrnn-join-timeout", daemon=True).start()
    try:
        jax.distributed.initialize(coordinator, num_processes, int(process_id),
                                   initialization_timeout=init_timeout + _GRACE_S,
                                   heartbeat_timeout_seconds=heartbeat_timeout,
                                   shutdown_timeout_seconds=heartbeat_timeout)
    except Exception as err:  # e.g. JAX already running in this process
        raise DistributedError(f"{what}: {type(err).__name__}: {str(err).strip().splitlines()[0]}. {hint}") from err
    finally:
        joined.set()


def is_primary() -> bool:
    """Whether this is process 0 (or the only process): the one that writes a run's outputs."""
    return jax.process_index() == 0


def _digest(value: Any) -> np.ndarray:
    """128 bits of the sha256 of ``value``'s JSON (keys sorted, others by repr) as 4 int32 words."""
    text = json.dumps(value, sort_keys=True, default=repr)
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[:16], dtype=np.int32).copy()


def check_same(settings: Mapping[str, Any], owner: str | None) -> None:
    """Raise a :class:`DistributedError` naming every entry of ``settings`` (JSON data, compared
    by a hash) whose value is not the same in every process; nothing to do in a single process.
    The message starts with ``owner: `` unless ``owner`` is None."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    names = sorted(settings)
    mine = np.stack([_digest(settings[name]) for name in names])
    every = np.asarray(multihost_utils.process_allgather(mine))  # (processes, settings, 4)
    differ = [(name, [p for p in range(len(every)) if not np.array_equal(every[p, i], every[0, i])])
              for i, name in enumerate(names)]
    differ = [(name, procs) for name, procs in differ if procs]
    if differ:
        me = jax.process_index()
        parts = [f"`{name}` (process(es) {', '.join(map(str, procs))} differ from process 0; this process, "
                 f"{me}, has {json.dumps(settings[name], sort_keys=True, default=repr)[:200]})"
                 for name, procs in differ]
        prefix = "" if owner is None else f"{owner}: "
        raise DistributedError(f"{prefix}the {len(every)} processes must run with the same settings and data, but "
                               "they differ in " + "; ".join(parts))
