"""The jaxrnn command line: metrics.json, PNG figures and REPORT.md on disk, and argument errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from jaxrnn.lesson import _cli, _common, _report

PNG = b"\x89PNG\r\n\x1a\n"
REQUIRED = ("sine.test_mse", "sentiment.test_accuracy", "tagging.token_accuracy",
            "clipping.grad_norm_before", "clipping.grad_norm_after")


def _metrics(out):
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics and all(isinstance(v, float) for v in metrics.values())
    return metrics


def test_all_writes_metrics_figures_and_report(tmp_path, capsys):
    """`all` in its short mode with the PyTorch side only (no JAX compilation: fast); the JAX side
    of every exercise runs in test_exercises."""
    out = tmp_path / "run"
    argv = ["all", "--quick", "--epochs", "2", "--framework", "torch", "--no-progress", "--out", str(out)]
    assert _cli.main(argv) == 0
    metrics = _metrics(out)
    for key in REQUIRED:
        assert key in metrics and f"torch.{key}" in metrics
        assert metrics[key] == metrics[f"torch.{key}"]
    assert not any(k.startswith("jax.") and not k.startswith("jax.shapes") for k in metrics)
    report = (out / "REPORT.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(figures) == sorted(p.name for p in out.glob("*.png")) and len(figures) == 9
    for name in figures:
        assert (out / name).read_bytes()[:8] == PNG
    for key in REQUIRED:  # every headline number is in the report, as written there
        assert f"`{key}`" in report
    assert "## All metrics (metrics.json)" in report
    # a quick run is a smoke test: the lesson's targets are not applied; one framework ran
    assert "(quick run: not applicable)" in report and "(pass)" not in report and "(FAIL)" not in report
    assert "Frameworks: torch. " in report and "both start from the same weights" not in report
    printed = capsys.readouterr().out
    assert "== sine ==" in printed and "held-out accuracy" in printed and "metrics.json" in printed


def _report_of(tmp_path, *, quick, frameworks=("jax", "torch")):
    """REPORT.md for made-up headline numbers: on each target, one framework meets it and one misses it."""
    metrics = {"jax.sine.test_mse": 1e-3, "torch.sine.test_mse": 1.2e-3,
               "jax.tagging.token_accuracy": 0.995, "torch.tagging.token_accuracy": 0.98}
    metrics = {k: v for k, v in metrics.items() if k.split(".")[0] in frameworks}
    result = _common.ExerciseResult("sine", "Exercise 2", metrics=metrics, report=["(the exercise's section)"])
    path = _report.write_report(tmp_path / "REPORT.md", [result], metrics, command="jaxrnn all",
                                frameworks=frameworks, wall_s=1.0, quick=quick)
    return path.read_text()


def test_full_run_report_marks_each_target_pass_or_fail(tmp_path):
    report = _report_of(tmp_path, quick=False)
    assert "| `sine.test_mse` | <= 0.001 | 0.001 (pass) | 0.0012 (FAIL) |" in report
    assert "| `tagging.token_accuracy` | >= 0.99 | 0.995 (pass) | 0.98 (FAIL) |" in report
    assert "not applicable" not in report and _report.QUICK_NOTE not in report


def test_quick_run_report_says_the_targets_do_not_apply(tmp_path):
    report = _report_of(tmp_path, quick=True)
    assert "| `sine.test_mse` | <= 0.001 | 0.001 (quick run: not applicable) | 0.0012 (quick run: not applicable) |" \
        in report
    assert "(pass)" not in report and "(FAIL)" not in report
    assert _report.QUICK_NOTE in report and "not applicable here" in report


@pytest.mark.parametrize("frameworks", [("jax",), ("torch",), ("jax", "torch")])
def test_report_says_same_weights_only_when_both_frameworks_ran(tmp_path, frameworks):
    report = _report_of(tmp_path, quick=False, frameworks=frameworks)
    line = next(ln for ln in report.splitlines() if ln.startswith("Command:"))
    both = "Frameworks: jax, torch (both start from the same weights and see the same data in the same order). "
    assert (both in line) == (len(frameworks) == 2)
    if len(frameworks) == 1:
        assert f"Frameworks: {frameworks[0]}. Wall time" in line


def test_one_exercise_in_jax(tmp_path):
    out = tmp_path / "shapes"
    assert _cli.main(["shapes", "--no-progress", "--out", str(out)]) == 0
    metrics = _metrics(out)
    assert metrics["shapes.hn_vs_output_max_abs_diff"] == 0.0
    assert (out / "shapes.png").read_bytes()[:8] == PNG
    assert "![" in (out / "REPORT.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sine", "--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
        (["sine", "--epochs", "many"], "argument --epochs: expected a positive integer, got 'many'"),
        (["sine", "--seed", "-3"], "argument --seed: expected a non-negative integer, got -3"),
        (["sine", "--framework", "tf"], "argument --framework: invalid choice: 'tf'"),
        (["lstm"], "argument command: invalid choice: 'lstm'"),
    ],
)
def test_bad_arguments_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_out_must_be_a_directory(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(SystemExit):
        _cli.main(["shapes", "--out", str(path)])
    assert "argument --out" in capsys.readouterr().err


def test_missing_torch_is_a_clear_error(monkeypatch, capsys):
    def no_torch():
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(_common, "import_torch", no_torch)
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["sine", "--framework", "both"])
    assert exit_info.value.code == 2
    assert "'both' needs PyTorch, which cannot be imported: No module named 'torch'" in capsys.readouterr().err


def test_python_dash_m_jaxrnn_runs():
    done = subprocess.run([sys.executable, "-m", "jaxrnn", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: jaxrnn")
    for command in _cli.COMMANDS:
        assert command in done.stdout
