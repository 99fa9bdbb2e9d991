"""Device, dtype and thread selection in one place. Called by the CLI only; the library never
changes global torch state on its own."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genmotion.errors import UsageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "Runtime",
    "Terminated",
    "configure",
    "interrupt_handlers",
    "raise_if_interrupted",
    "resolve_device",
    "resolve_dtype",
]

_DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True, kw_only=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype
    threads: int


def resolve_device(device: str | None = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else is checked."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UsageError(f"unknown device {device!r}", fix="use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} was asked for but CUDA is not available", fix="use --device cpu")
    return dev


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """'auto' -> bf16 on CUDA, fp32 on CPU. fp16 on CPU is refused: it runs ~500x slower here."""
    import torch

    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    name = _DTYPES.get(dtype)
    if name is None:
        raise UsageError(f"unknown dtype {dtype!r}", fix=f"use one of auto, {', '.join(sorted(_DTYPES))}")
    if name == "float16" and device.type == "cpu":
        raise UsageError("fp16 on CPU is not supported", why="CPU fp16 matmul is ~0.4 GFLOP/s", fix="use bf16 or fp32")
    return getattr(torch, name)


def configure(device: str | None = "auto", dtype: str | None = "auto", threads: int | None = None) -> Runtime:
    """Pick device and dtype, set torch's intra-op threads; return what was chosen."""
    import torch

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if threads is not None:
        if threads < 1:
            raise UsageError(f"threads must be ≥ 1, got {threads}")
        torch.set_num_threads(threads)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device=dev, dtype=dt, threads=torch.get_num_threads())


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise KeyboardInterrupt (the CLI exits 143 for it, 130 for SIGINT)."""


@dataclass
class InterruptState:
    signal: int | None = None  # the last SIGINT / SIGTERM received inside `interrupt_handlers()`


_active: list[InterruptState] = []


@contextlib.contextmanager
def interrupt_handlers() -> Iterator[InterruptState]:
    """Inside the block SIGINT raises KeyboardInterrupt and SIGTERM raises `Terminated`, and the signal is
    remembered (see `raise_if_interrupted`); the previous handlers are restored after. Outside the main
    thread it changes nothing."""
    state = InterruptState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: object) -> None:
        state.signal = signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _active.append(state)
    try:
        yield state
    finally:
        _active.remove(state)
        for sig, old in previous.items():
            signal.signal(sig, old)


def raise_if_interrupted() -> None:
    """Raise again a SIGINT / SIGTERM received in `interrupt_handlers()` whose KeyboardInterrupt was caught
    and dropped on the way (some libraries do); long loops call it between frames."""
    if _active and _active[-1].signal is not None:
        raise Terminated() if _active[-1].signal == signal.SIGTERM else KeyboardInterrupt()
