"""The CLI contract: version, help, registry table, exit codes and one-line errors."""

import subprocess
import sys

from genmotion import __version__
from genmotion.cli.app import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genmotion.cli.app", *args], capture_output=True, text=True)


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"genmotion {__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("models", "train", "toyworld", "bench"):
        assert command in out


def test_models_lists_a_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "genmotion models" in out
    for name in ("videoar-toy", "ca2vdm-toy", "var-toy", "cubecomposer-toy", "riganything-toy", "vfmf-toy"):
        assert name in out, f"{name} is not in the listing"


def test_unknown_command_is_a_usage_error():
    proc = _run("frobnicate")
    assert proc.returncode == 2 and "No such command" in proc.stderr


def test_bad_input_is_one_line_with_exit_3(tmp_path):
    proc = _run("train", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genmotion: error:") and "does not exist" in lines[0]


def test_bad_override_is_exit_2_and_debug_shows_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: caption-lm\n")
    proc = _run("train", str(cfg), "--set", "trainer.devices")
    assert proc.returncode == 2 and "no '='" in proc.stderr
    proc = _run("--debug", "train", str(cfg), "--set", "trainer.devices")
    assert proc.returncode == 2 and "Traceback" in proc.stderr
