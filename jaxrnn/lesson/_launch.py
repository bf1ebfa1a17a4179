"""``jaxrnn launch``: start N local processes of one ``jaxrnn`` command that train together, a
try-out of multi-process training on one machine's CPU.

    jaxrnn launch [-n N] [--local-devices K] [--port P] COMMAND [ARGS...]

runs ``jaxrnn COMMAND ARGS... --coordinator 127.0.0.1:P --num-processes N --process-id I`` for
I = 0 .. N-1, each on the CPU with K devices (``XLA_FLAGS=--xla_force_host_platform_device_count=K``),
so ``--devices`` may be up to N * K. Process 0's output is shown as it comes; of the others, only
their errors (stderr), each line marked ``[process I]``. When a process fails, the launcher says
which and how; the others stop on their own (jax.distributed's heartbeat timeout). The exit status
is the first failure's, or 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

OWNED = ("--coordinator", "--num-processes", "--process-id")
"""The flags the launcher gives each process itself."""


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxrnn launch",
        description="Start N processes of one jaxrnn command on this machine's CPU that train together "
        "(jax.distributed over loopback): a try-out of multi-process training.",
        epilog="Example: jaxrnn launch -n 2 --local-devices 2 sine --quick --devices 4",
    )
    parser.add_argument("-n", "--num-processes", type=int, default=2, metavar="N", help="processes (default 2)")
    parser.add_argument("--local-devices", type=int, default=1, metavar="K",
                        help="CPU devices in each process (default 1); --devices may be up to N * K")
    parser.add_argument("--port", type=int, default=None, metavar="P",
                        help="the coordinator's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]",
                        help="the jaxrnn command and its arguments, e.g. sine --quick --devices 4")
    return parser


def _relay(stream, pid: int) -> None:
    """Copy a process's stderr to ours, each line marked with the process's id."""
    for line in stream:
        sys.stderr.write(f"[process {pid}] {line}")
    stream.close()


def _how(status: int) -> str:
    if status < 0:
        return f"was killed by signal {signal.Signals(-status).name}"
    return f"exited with status {status}"


def main(argv: Sequence[str]) -> int:
    """Run ``jaxrnn launch``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_processes < 1:
        parser.error(f"argument -n/--num-processes: expected a positive integer, got {args.num_processes}")
    if args.local_devices < 1:
        parser.error(f"argument --local-devices: expected a positive integer, got {args.local_devices}")
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error(f"argument --port: expected a port in [1, 65535], got {args.port}")
    if not args.command:
        parser.error("the following arguments are required: COMMAND (e.g. sine --devices 2)")
    given = [a for a in args.command if a.split("=", 1)[0] in OWNED]
    if given:
        parser.error(f"argument {given[0]}: the launcher sets {', '.join(OWNED)} for each process itself")
    address = f"127.0.0.1:{args.port or _free_port('127.0.0.1')}"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.local_devices}"
                        ).strip()
    print(f"jaxrnn launch: {args.num_processes} processes x {args.local_devices} CPU device(s), coordinator "
          f"{address}: jaxrnn {' '.join(args.command)}", file=sys.stderr, flush=True)
    procs, relays = [], []
    for pid in range(args.num_processes):
        cmd = [sys.executable, "-m", "jaxrnn", *args.command, "--coordinator", address,
               "--num-processes", str(args.num_processes), "--process-id", str(pid)]
        proc = subprocess.Popen(cmd, env=env, text=True, stdout=None if pid == 0 else subprocess.DEVNULL,
                                stderr=None if pid == 0 else subprocess.PIPE)
        procs.append(proc)
        if pid:
            relay = threading.Thread(target=_relay, args=(proc.stderr, pid), daemon=True)
            relay.start()
            relays.append(relay)
    failed: tuple[int, int] | None = None
    try:
        remaining = list(range(len(procs)))
        while remaining:
            for pid in list(remaining):
                try:
                    status = procs[pid].wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
                remaining.remove(pid)
                if status and failed is None:
                    failed = (pid, status)
                    others = "; the others stop within their --heartbeat-timeout" if remaining else ""
                    print(f"jaxrnn launch: process {pid} {_how(status)}{others}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        return 130
    for relay in relays:
        relay.join(timeout=5)
    return 0 if failed is None else (failed[1] if failed[1] > 0 else 128 - failed[1])
