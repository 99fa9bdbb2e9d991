"""Ctrl-C and SIGTERM through the installed console script, as `timeout` or a container stop sends them:
a playable partial video and exit 130 / 143 after frames exist; nothing left and one line before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genmotion.io import probe

GENMOTION = str(Path(sys.executable).with_name("genmotion"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def started():
    """Start `genmotion video` for a very long video; the process is killed after the test whatever happens."""
    procs: list[subprocess.Popen] = []

    def start(folder: Path) -> subprocess.Popen:
        args = [GENMOTION, "video", "-p", "a red ball bouncing to the left", "-n", "100000", "-o", "v.mp4"]
        procs.append(
            subprocess.Popen(args, cwd=folder, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _wait_for(ready, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if ready():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen in {timeout} s")


def _wait_for_frames(folder: Path, proc: subprocess.Popen) -> None:
    """Until the writer has opened its hidden temporary MP4 (the first frames exist), and a little more."""
    _wait_for(lambda: any(folder.glob(".v.mp4.*.tmp")), proc, "the first frame", timeout=120.0)
    time.sleep(1.0)


def _handles_sigterm(pid: int) -> bool:
    """Whether the process catches SIGTERM yet (main() installs the handler after Python starts)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_generation_leaves_a_playable_partial(started, tmp_path, sig, code):
    proc = started(tmp_path)
    _wait_for_frames(tmp_path, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.partial.mp4"]  # no hidden .tmp, no v.mp4
    frames = probe(tmp_path / "v.partial.mp4").num_frames
    lines = [ln for ln in err.splitlines() if ln.startswith("genmotion:")]
    assert frames > 0 and len(lines) == 1 and f"after {frames} frames" in lines[0] and "v.partial.mp4" in lines[0]


def test_sigterm_before_any_frame_removes_everything(started, tmp_path):
    proc = started(tmp_path)
    _wait_for(lambda: _handles_sigterm(proc.pid), proc, "main() installing its handlers")
    time.sleep(0.1)  # inside the imports / model load, before the first frame
    assert not any(tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert list(tmp_path.iterdir()) == []
    lines = [ln for ln in err.splitlines() if ln.strip() and "━" not in ln and "WARNING" not in ln]
    assert len(lines) == 1 and lines[0].startswith("genmotion: interrupted"), err


def test_ctrl_c_before_the_first_frame_in_process(tmp_path, monkeypatch, capsys):
    """KeyboardInterrupt while the model loads (where typer used to turn it into exit 0)."""
    import genmotion
    from genmotion.cli.app import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(genmotion, "load", interrupted)
    assert main(["video", "-p", "a red ball", "-n", "4", "-o", str(tmp_path / "v.mp4")]) == 130
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err.strip() == "genmotion: interrupted"


def test_handlers_are_restored_after_main(tmp_path):
    from genmotion.cli.app import main

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert main(["video", "-p", "x", "--fps", "nan"]) == 2
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_swallowed_interrupt_still_stops_at_the_next_frame(tmp_path):
    """A library that catches KeyboardInterrupt and carries on cannot make an interrupted run look finished."""
    from genmotion.io import open_video_writer
    from genmotion.runtime import interrupt_handlers

    frame = bytes(16 * 16 * 3)
    import numpy as np

    with interrupt_handlers():
        with pytest.raises(KeyboardInterrupt), open_video_writer(tmp_path / "v.mp4", fps=8) as writer:
            writer.write(np.frombuffer(frame, np.uint8).reshape(16, 16, 3))
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
            except KeyboardInterrupt:
                pass  # swallowed, as some libraries do
            writer.write(np.frombuffer(frame, np.uint8).reshape(16, 16, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.partial.mp4"]
