"""Procedural creatures for training and evaluating the rigger: random skeleton trees of several body
plans (bipeds, quadrupeds, snakes, birds, spiders, tailed bipeds, and the held-out hexapods and centaurs),
each bone wrapped in a capsule. Y is up, +Z forward, X lateral; a creature is about 1-2 units tall.

Axes: J joints; `radii[j]` is the radius of the capsule of the bone ending at joint j (the root's blob too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genmotion.rigging.skeleton import Skeleton

__all__ = ["BODY_PLANS", "HELD_OUT_PLANS", "TRAIN_PLANS", "Creature", "random_creature"]


@dataclass(frozen=True)
class Creature:
    """A rest-pose skeleton with a capsule radius per joint (J,) and the body plan it came from."""

    skeleton: Skeleton
    radii: np.ndarray
    plan: str


class _Builder:
    """Grows a joint tree chain by chain."""

    def __init__(self, root: np.ndarray, radius: float) -> None:
        self.joints: list[np.ndarray] = [np.asarray(root, dtype=np.float64)]
        self.parents: list[int] = [-1]
        self.radii: list[float] = [radius]

    def chain(
        self,
        start: int,
        direction: np.ndarray,
        n: int,
        length: float,
        radius: float,
        bend: float = 0.0,
        rng: np.random.Generator | None = None,
        taper: float = 0.85,
    ) -> int:
        """Add `n` joints from joint `start` along `direction` (total `length`); returns the last joint."""
        d = np.asarray(direction, dtype=np.float64)
        d = d / np.linalg.norm(d)
        j, r = start, radius
        for _ in range(n):
            if rng is not None and bend:
                d = d + rng.normal(0, bend, 3)
                d = d / np.linalg.norm(d)
            self.joints.append(self.joints[j] + d * length / n)
            self.parents.append(j)
            self.radii.append(r)
            j, r = len(self.joints) - 1, r * taper
        return j

    def done(self, plan: str) -> Creature:
        sk = Skeleton(np.stack(self.joints), np.asarray(self.parents, dtype=np.int64))
        return Creature(sk, np.asarray(self.radii), plan)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _limb_pair(
    b: _Builder,
    at: int,
    rng: np.random.Generator,
    out: float,
    down: float,
    forward: float,
    n: int,
    length: float,
    radius: float,
) -> None:
    for side in (-1.0, 1.0):
        shoulder = b.chain(at, np.array([side, 0.0, 0.0]), 1, out, radius * 1.1)
        b.chain(shoulder, np.array([side * 0.3, -down, forward]), n, length, radius, 0.15, rng)


def _biped(rng: np.random.Generator, tail: bool = False) -> Creature:
    hip = _u(rng, 0.8, 1.1)
    lean = _u(rng, 0.5, 1.0) if tail else _u(rng, -0.05, 0.1)
    b = _Builder(np.array([0.0, hip, 0.0]), _u(rng, 0.12, 0.18))
    top = b.chain(0, np.array([0.0, 1.0, lean]), int(rng.integers(2, 5)), _u(rng, 0.5, 0.8), _u(rng, 0.11, 0.16))
    head = b.chain(top, np.array([0.0, 1.0, lean]), int(rng.integers(1, 3)), _u(rng, 0.12, 0.2), 0.06)
    b.chain(head, np.array([0.0, 0.6, 1.0]), 1, _u(rng, 0.15, 0.25), _u(rng, 0.09, 0.13), taper=1.0)
    arm_len = _u(rng, 0.5, 0.8) * (0.5 if tail else 1.0)
    _limb_pair(b, top, rng, _u(rng, 0.12, 0.2), 1.0, 0.1, int(rng.integers(2, 4)), arm_len, _u(rng, 0.04, 0.06))
    _limb_pair(b, 0, rng, _u(rng, 0.08, 0.14), 1.0, 0.05, int(rng.integers(2, 4)), hip * 0.9, _u(rng, 0.05, 0.08))
    if tail:
        b.chain(0, np.array([0.0, 0.1, -1.0]), int(rng.integers(3, 7)), _u(rng, 0.6, 1.2), 0.09, 0.1, rng)
    return b.done("dino" if tail else "biped")


def _quadruped(rng: np.random.Generator) -> Creature:
    h, L = _u(rng, 0.5, 0.9), _u(rng, 0.7, 1.3)
    b = _Builder(np.array([0.0, h, -L / 2]), _u(rng, 0.13, 0.2))
    front = b.chain(0, np.array([0.0, 0.0, 1.0]), int(rng.integers(2, 5)), L, _u(rng, 0.13, 0.2), 0.05, rng, 1.0)
    neck = b.chain(front, np.array([0.0, 1.0, 0.8]), int(rng.integers(1, 4)), _u(rng, 0.25, 0.5), 0.08)
    b.chain(neck, np.array([0.0, -0.2, 1.0]), 1, _u(rng, 0.15, 0.3), _u(rng, 0.08, 0.12), taper=1.0)
    n = int(rng.integers(2, 4))
    _limb_pair(b, front, rng, _u(rng, 0.1, 0.16), 1.0, 0.05, n, h * 0.95, _u(rng, 0.04, 0.07))
    _limb_pair(b, 0, rng, _u(rng, 0.1, 0.16), 1.0, -0.05, n, h * 0.95, _u(rng, 0.04, 0.07))
    if rng.random() < 0.7:
        b.chain(0, np.array([0.0, 0.3, -1.0]), int(rng.integers(2, 6)), _u(rng, 0.3, 0.8), 0.05, 0.15, rng)
    return b.done("quadruped")


def _snake(rng: np.random.Generator) -> Creature:
    b = _Builder(np.array([0.0, 0.1, -1.0]), _u(rng, 0.06, 0.1))
    last = b.chain(
        0, np.array([0.0, 0.0, 1.0]), int(rng.integers(6, 15)), _u(rng, 1.6, 2.4), _u(rng, 0.07, 0.12), 0.25, rng, 1.0
    )
    b.chain(last, np.array([0.0, 0.2, 1.0]), 1, _u(rng, 0.12, 0.2), _u(rng, 0.08, 0.13), taper=1.0)
    return b.done("snake")


def _bird(rng: np.random.Generator) -> Creature:
    hip = _u(rng, 0.4, 0.6)
    b = _Builder(np.array([0.0, hip, 0.0]), _u(rng, 0.15, 0.2))
    chest = b.chain(0, np.array([0.0, 0.5, 1.0]), int(rng.integers(1, 3)), _u(rng, 0.3, 0.5), _u(rng, 0.14, 0.2))
    neck = b.chain(chest, np.array([0.0, 1.0, 0.3]), int(rng.integers(2, 5)), _u(rng, 0.25, 0.5), 0.05, 0.1, rng)
    b.chain(neck, np.array([0.0, -0.3, 1.0]), 1, _u(rng, 0.1, 0.2), _u(rng, 0.06, 0.09), taper=0.6)
    for side in (-1.0, 1.0):  # wings: long, horizontal, thin
        b.chain(chest, np.array([side, 0.15, -0.2]), int(rng.integers(3, 5)), _u(rng, 0.6, 1.0), 0.04, 0.1, rng)
    _limb_pair(b, 0, rng, 0.08, 1.0, 0.1, int(rng.integers(2, 4)), hip * 0.95, 0.035)
    b.chain(0, np.array([0.0, 0.2, -1.0]), int(rng.integers(1, 3)), _u(rng, 0.2, 0.4), 0.06, taper=0.7)
    return b.done("bird")


def _legs_around(b: _Builder, at: int, rng: np.random.Generator, pairs: int, spread: float, length: float) -> None:
    for i in range(pairs):
        z = np.interp(i, [0, max(pairs - 1, 1)], [0.8, -0.8])
        for side in (-1.0, 1.0):
            knee = b.chain(at, np.array([side, 0.6, z]), 1, spread, 0.035)
            b.chain(knee, np.array([side * 0.4, -1.0, z * 0.3]), int(rng.integers(1, 3)), length, 0.03, 0.1, rng)


def _spider(rng: np.random.Generator) -> Creature:
    h = _u(rng, 0.35, 0.55)
    b = _Builder(np.array([0.0, h, 0.0]), _u(rng, 0.14, 0.2))
    b.chain(0, np.array([0.0, 0.1, 1.0]), 1, _u(rng, 0.2, 0.3), _u(rng, 0.1, 0.14), taper=1.0)
    b.chain(0, np.array([0.0, 0.2, -1.0]), int(rng.integers(1, 3)), _u(rng, 0.4, 0.6), _u(rng, 0.18, 0.26))
    _legs_around(b, 0, rng, 4, _u(rng, 0.35, 0.55), h * 1.3)
    return b.done("spider")


def _hexapod(rng: np.random.Generator) -> Creature:
    h = _u(rng, 0.3, 0.5)
    b = _Builder(np.array([0.0, h, -0.5]), _u(rng, 0.1, 0.14))
    segs = [0]
    for _ in range(2):
        segs.append(b.chain(segs[-1], np.array([0.0, 0.0, 1.0]), 1, _u(rng, 0.35, 0.5), _u(rng, 0.1, 0.15)))
    b.chain(segs[-1], np.array([0.0, 0.2, 1.0]), 1, _u(rng, 0.15, 0.25), 0.09, taper=1.0)
    for s in segs:
        for side in (-1.0, 1.0):
            knee = b.chain(s, np.array([side, 0.5, 0.0]), 1, _u(rng, 0.25, 0.4), 0.035)
            b.chain(knee, np.array([side * 0.3, -1.0, 0.0]), int(rng.integers(1, 3)), h * 1.2, 0.03, 0.1, rng)
    return b.done("hexapod")


def _centaur(rng: np.random.Generator) -> Creature:
    h, L = _u(rng, 0.6, 0.9), _u(rng, 0.8, 1.2)
    b = _Builder(np.array([0.0, h, -L / 2]), _u(rng, 0.14, 0.2))
    front = b.chain(0, np.array([0.0, 0.0, 1.0]), int(rng.integers(2, 4)), L, _u(rng, 0.14, 0.2), 0.05, rng, 1.0)
    top = b.chain(front, np.array([0.0, 1.0, 0.1]), int(rng.integers(2, 4)), _u(rng, 0.5, 0.7), 0.12)
    head = b.chain(top, np.array([0.0, 1.0, 0.0]), 1, 0.15, 0.05)
    b.chain(head, np.array([0.0, 0.6, 1.0]), 1, _u(rng, 0.15, 0.22), _u(rng, 0.09, 0.12), taper=1.0)
    _limb_pair(b, top, rng, 0.15, 1.0, 0.1, int(rng.integers(2, 4)), _u(rng, 0.5, 0.7), 0.045)
    _limb_pair(b, front, rng, 0.12, 1.0, 0.05, 2, h * 0.95, 0.055)
    _limb_pair(b, 0, rng, 0.12, 1.0, -0.05, 2, h * 0.95, 0.055)
    b.chain(0, np.array([0.0, 0.3, -1.0]), int(rng.integers(2, 4)), _u(rng, 0.3, 0.6), 0.05, 0.15, rng)
    return b.done("centaur")


BODY_PLANS: dict[str, Callable[[np.random.Generator], Creature]] = {
    "biped": _biped,
    "dino": lambda rng: _biped(rng, tail=True),
    "quadruped": _quadruped,
    "snake": _snake,
    "bird": _bird,
    "spider": _spider,
    "hexapod": _hexapod,
    "centaur": _centaur,
}
HELD_OUT_PLANS: tuple[str, ...] = ("hexapod", "centaur")
TRAIN_PLANS: tuple[str, ...] = tuple(p for p in BODY_PLANS if p not in HELD_OUT_PLANS)


def random_creature(plan: str, rng: np.random.Generator, scale: tuple[float, float] = (0.7, 1.4)) -> Creature:
    """A random creature of body plan `plan`, scaled by a random factor in `scale`."""
    if plan not in BODY_PLANS:
        raise ValueError(f"unknown body plan {plan!r}; known: {sorted(BODY_PLANS)}")
    c = BODY_PLANS[plan](rng)
    s = float(rng.uniform(*scale))
    return Creature(Skeleton(c.skeleton.joints * s, c.skeleton.parents), c.radii * s, plan)
