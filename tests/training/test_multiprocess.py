"""Training across processes (jax.distributed, gloo collectives on the CPU), for real: every run
here is 1 or 2 subprocesses on loopback, each with 2 or 4 CPU devices from XLA_FLAGS, 4 devices in
all. 2 processes x 2 devices give the history and final parameters of 1 process x 4 devices
(float32; the stated tolerance, 1e-5 relative, is rounding: the all-reduce sums the gradients in
another order), a 2-process run resumes from its checkpoint, a killed peer ends the survivor with
jax.distributed's error within the heartbeat timeout, and mismatched settings are a named error.
The worker is tests/training/_multiprocess_worker.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxrnn

WORKER = Path(__file__).with_name("_multiprocess_worker.py")
ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp_path: Path, name: str, processes: int = 2, *, seeds=None, only=None, **spec) -> list[subprocess.Popen]:
    """Start the processes of one run (``only``: the ids to start, default all), 4 devices in all."""
    spec = {**dict(task="mse", epochs=3, seed=0, checkpoint_dir=None, resume=False, init_timeout=60,
                   heartbeat_timeout=20), **spec}
    if spec["checkpoint_dir"] is not None:
        spec["checkpoint_dir"] = str(spec["checkpoint_dir"])
    spec.update(num_processes=processes, port=free_port(), out=str(tmp_path / name))
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
               XLA_FLAGS=f"--xla_force_host_platform_device_count={4 // processes}")
    procs = []
    for pid in range(processes) if only is None else only:
        path = tmp_path / f"{name}.spec{pid}.json"
        path.write_text(json.dumps({**spec, "process_id": pid, "seed": spec["seed"] if seeds is None else seeds[pid]}))
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(path)], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return procs


def finish(procs, timeout: float = 120) -> list[tuple[int, str]]:
    """Wait for every process (at most ``timeout`` s in all); their (exit status, stderr)."""
    deadline, out = time.monotonic() + timeout, []
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a process did not end within {timeout} s (a hang)")
        out.append((p.returncode, err))
    return out


def run(tmp_path: Path, name: str, processes: int = 2, **spec) -> list[dict]:
    """One run to its end: every process's history and parameters."""
    for status, err in finish(start(tmp_path, name, processes, **spec)):
        assert status == 0, err[-3000:]
    return [dict(np.load(tmp_path / f"{name}.{pid}.npz")) for pid in range(processes)]


def assert_same_run(got: dict, want: dict, rtol: float) -> None:
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=rtol * 1e-2, err_msg=key)


@pytest.mark.parametrize("task", ["mse", "tokens"])
def test_two_processes_of_two_devices_match_one_process_of_four(tmp_path, task):
    """MSE (SinPredictor) and cross-entropy over (batch, seq) tokens (RNNSeq2Seq), in batches of
    6 that do not divide over 4 devices (padded and masked); every process ends with the same
    parameters, bit for bit, and with the history and parameters of the one-process run."""
    two = start(tmp_path, "two", 2, task=task)
    one = run(tmp_path, "one", 1, task=task)[0]
    for status, err in finish(two):
        assert status == 0, err[-3000:]
    p0, p1 = (dict(np.load(tmp_path / f"two.{pid}.npz")) for pid in (0, 1))
    for key in p0:
        np.testing.assert_array_equal(p0[key], p1[key], err_msg=key)
    assert len(p0["history.step_loss"]) == 3 * (5 if task == "mse" else 3)
    assert_same_run(p0, one, rtol=1e-5)


def test_two_processes_resume_from_their_checkpoint_as_four_straight_epochs(tmp_path):
    """A 2-process run checkpointed after 2 epochs (in one directory both reach) and resumed to 4
    equals a 2-process run of 4 epochs, bit for bit, in both processes. The resumed run is given
    other starting weights, which only a run that ignored its checkpoint would train from."""
    ckpt = tmp_path / "ckpt"
    straight = start(tmp_path, "straight", 2, epochs=4)
    run(tmp_path, "first", 2, epochs=2, checkpoint_dir=ckpt)
    resumed = run(tmp_path, "resumed", 2, epochs=4, checkpoint_dir=ckpt, resume=True, init_seed=1)
    for status, err in finish(straight):
        assert status == 0, err[-3000:]
    want = dict(np.load(tmp_path / "straight.0.npz"))
    for got in resumed:
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert sorted(p.name for p in ckpt.iterdir() if p.name.isdigit()) == ["3", "4"]


SURVIVOR_SAYS = {1: "The following tasks are unhealthy (stopped sending heartbeats):\n1\n",
                 0: "Either the leader task was preempted/died/restarted unexpectedly"}


@pytest.mark.parametrize("killed", [1, 0])
def test_a_killed_peer_ends_the_survivor_within_the_heartbeat_timeout(tmp_path, killed):
    """One process is killed (SIGKILL) after the first checkpoint, the other (process 0 hosts the
    coordinator) stops with jax.distributed's error naming the dead peer or the lost coordinator,
    not a hang, within the heartbeat timeout (5 s here) and some slack; the last complete
    checkpoint stays readable and a restart with resume continues from it (the restart is given
    other starting weights, so a restart from scratch would not reproduce the epochs before)."""
    ckpt = tmp_path / "ckpt"
    procs = start(tmp_path, "killed", 2, epochs=10_000, checkpoint_dir=ckpt, heartbeat_timeout=5)
    deadline = time.monotonic() + 90
    while not any(p.name.isdigit() for p in ckpt.glob("*")) and time.monotonic() < deadline:
        assert procs[0].poll() is None and procs[1].poll() is None, finish(procs)
        time.sleep(0.2)
    assert time.monotonic() < deadline, "no checkpoint within 90 s"
    procs[killed].send_signal(signal.SIGKILL)
    stopped = time.monotonic()
    status, err = finish(procs, timeout=60)[1 - killed]
    waited = time.monotonic() - stopped
    assert status != 0 and waited < 5 + 40, (status, waited)
    assert "Terminating process because the JAX distributed service detected fatal errors" in err, err[-3000:]
    assert SURVIVOR_SAYS[killed] in err, err[-3000:]

    variables, meta = jaxrnn.load_checkpoint(ckpt)
    epoch = meta["epoch"]
    assert epoch >= 1 and len(meta["history"]["loss"]) == epoch
    resumed = run(tmp_path, "resumed", 2, epochs=epoch + 1, checkpoint_dir=ckpt, resume=True, init_seed=1)
    np.testing.assert_array_equal(resumed[0]["history.loss"][:epoch], meta["history"]["loss"])
    assert len(resumed[0]["history.loss"]) == epoch + 1


def test_processes_with_different_settings_stop_naming_them(tmp_path):
    """Seeds 0 and 1: both processes stop at the start with a DistributedError naming the seed."""
    for pid, (status, err) in enumerate(finish(start(tmp_path, "mismatch", 2, seeds=[0, 1]))):
        assert status != 0
        assert "DistributedError: train: the 2 processes must run with the same settings and data, but they " \
               f"differ in `seed` (process(es) 1 differ from process 0; this process, {pid}, has {pid})" in err, err
        assert "`epochs`" not in err and "`model`" not in err


def test_a_peer_that_never_joins_is_a_named_error_within_the_timeout(tmp_path):
    """Only process 0 (or only process 1) of 2 starts: it exits with status 1 and a DistributedError
    message after init_timeout (3 s), before jaxlib's own deadline aborts it."""
    for pid in (0, 1):
        begun = time.monotonic()
        [(status, err)] = finish(start(tmp_path, f"alone{pid}", 2, only=[pid], init_timeout=3), timeout=60)
        assert status == 1 and time.monotonic() - begun < 3 + 30, (status, err[-3000:])
        assert (f"jaxrnn: error: DistributedError: process {pid} of 2 could not start with the coordinator at "
                "127.0.0.1:") in err, err[-3000:]
        assert "within 3 s: the other processes did not all join" in err


@pytest.mark.parametrize("args, kwargs, error, message", [
    (("localhost", 2, 0), {}, ValueError,
     "initialize: `coordinator` must be 'HOST:PORT' with a port in [1, 65535], got 'localhost'"),
    (("h:99999", 2, 0), {}, ValueError, "got 'h:99999'"),
    ((12355, 2, 0), {}, TypeError, "initialize: `coordinator` must be a 'HOST:PORT' string, got int"),
    (("h:1", 0, 0), {}, ValueError, "initialize: `num_processes` must be a positive int, got 0"),
    (("h:1", 2, 2), {}, ValueError, "initialize: `process_id` must be in [0, 2) for 2 processes, got 2"),
    (("h:1", 2, "0"), {}, TypeError, "initialize: `process_id` must be an int, got '0' (str)"),
    (("h:1", 2, 0), {"init_timeout": 0}, ValueError, "initialize: `init_timeout` must be a positive int, got 0"),
    (("h:1", 2, 0), {"heartbeat_timeout": 1.5}, TypeError,
     "initialize: `heartbeat_timeout` must be a positive int, got 1.5 (float)"),
])
def test_initialize_names_a_bad_argument_before_starting(args, kwargs, error, message):
    """Refused before jax.distributed starts: this process stays a single one."""
    with pytest.raises(error) as caught:
        jaxrnn.initialize_distributed(*args, **kwargs)
    assert message in str(caught.value)
    assert jax.process_count() == 1
