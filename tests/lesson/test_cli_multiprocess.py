"""The command line across processes: ``jaxrnn launch`` (2 processes x 2 CPU devices, loopback)
writes the metrics of one process with 4 devices, from process 0 only; processes started with
different settings stop naming them; and the flags' errors, before anything starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jaxrnn.lesson import _cli

ROOT = Path(__file__).parents[2]
SINE = ["sine", "--quick", "--epochs", "2", "--devices", "4", "--no-progress"]


def _env(devices: int) -> dict:
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
                XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _jaxrnn(*args, devices: int, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jaxrnn", *args], env=_env(devices), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_launch_two_processes_writes_the_metrics_of_one_process_with_four_devices(tmp_path):
    """float32 on both sides, 1e-5 relative (the all-reduce's summation order); process 0 alone
    prints and writes, and the report names the processes."""
    one = _jaxrnn(*SINE, "--out", str(tmp_path / "one"), devices=4)
    done = subprocess.run([sys.executable, "-m", "jaxrnn", "launch", "-n", "2", "--local-devices", "2", *SINE,
                           "--out", str(tmp_path / "two")], env=_env(1), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert one.wait(timeout=300) == 0, one.stderr.read()[-3000:]
    assert done.stdout.count("== sine ==") == 1 and done.stdout.count("wrote ") == 1
    assert "jaxrnn launch: 2 processes x 2 CPU device(s), coordinator 127.0.0.1:" in done.stderr
    want = json.loads((tmp_path / "one" / "metrics.json").read_text())
    got = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert sorted(got) == sorted(want) and any(k.startswith("jax.sine.") for k in want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    report = (tmp_path / "two" / "REPORT.md").read_text()
    assert "trained by 2 processes with 4 devices in all (jax.distributed)" in report
    assert "trained by" not in (tmp_path / "one" / "REPORT.md").read_text()


def test_processes_started_with_different_seeds_stop_naming_the_seed(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [_jaxrnn(*SINE, "--seed", str(pid), "--out", str(tmp_path / "out"), "--coordinator", f"127.0.0.1:{port}",
                     "--num-processes", "2", "--process-id", str(pid), devices=2) for pid in (0, 1)]
    for pid, proc in enumerate(procs):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err[-3000:]
        assert ("jaxrnn: error: the 2 processes must run with the same settings and data, but they differ in "
                f"`--seed` (process(es) 1 differ from process 0; this process, {pid}, has {pid})") in err, err[-3000:]
        assert "`--epochs`" not in err and "`command`" not in err
    assert not (tmp_path / "out").exists()


def test_launch_reports_the_process_that_failed(tmp_path):
    """--devices 3 does not split over 2 processes: each exits with the parser's status 2."""
    done = subprocess.run([sys.executable, "-m", "jaxrnn", "launch", "-n", "2", "--local-devices", "2", "sine",
                           "--devices", "3", "--out", str(tmp_path)], env=_env(1), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "jaxrnn launch: process 0 exited with status 2" in done.stderr or \
           "jaxrnn launch: process 1 exited with status 2" in done.stderr
    assert "[process 1] " in done.stderr and "must be a multiple of 2 (each process gives the same number), got 3" \
        in done.stderr


@pytest.mark.parametrize("argv, message", [
    (["sine", "--coordinator", "127.0.0.1:1234", "--num-processes", "2"],
     "argument --process-id: a run of several processes needs --coordinator, --num-processes and --process-id"),
    (["sine", "--num-processes", "2", "--process-id", "0"], "argument --coordinator: a run of several processes"),
    (["sine", "--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
     "argument --coordinator: `coordinator` must be 'HOST:PORT' with a port in [1, 65535], got 'localhost'"),
    (["sine", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
     "argument --process-id: must be in [0, 2) for --num-processes 2, got 2"),
    (["sine", "--framework", "both", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "0"],
     "argument --framework: the PyTorch reference trains in one process; --framework both cannot run"),
    (["sine", "--coordinator", "h:1", "--num-processes", "0", "--process-id", "0"],
     "argument --num-processes: expected a positive integer, got 0"),
    (["launch", "-n", "2", "sine", "--process-id", "1"],
     "argument --process-id: the launcher sets --coordinator, --num-processes, --process-id for each process"),
    (["launch", "-n", "2"], "the following arguments are required: COMMAND"),
    (["launch", "-n", "0", "sine"], "argument -n/--num-processes: expected a positive integer, got 0"),
])
def test_multiprocess_flag_errors_name_the_flag(argv, message, capsys):
    """Each is refused before jax.distributed starts (this process stays a single one)."""
    with pytest.raises(SystemExit) as exit_:
        _cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
