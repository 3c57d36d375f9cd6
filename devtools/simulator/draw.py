"""Random draws: one numpy stream per (seed, key), served as Python floats, and the cumulative weights
they pick from."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

import numpy as np


def _cum(weights: Iterable[float]) -> tuple[float, ...]:
    out: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return tuple(x / acc for x in out)


def _cum_raw(weights: Iterable[float]) -> list[float]:
    out: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


class _Draw:
    """Scalar random draws served from numpy blocks.

    A numpy scalar call costs ~0.5-1 µs, more than the rest of the per-event work; drawing 128 uniforms at a
    time and handing them out as Python floats keeps numpy's generator (and its reproducibility guarantees)
    while costing ~0.1 µs per draw.
    """

    __slots__ = ("_rng", "_buf", "_i", "_block")

    def __init__(self, rng: np.random.Generator, block: int = 128) -> None:
        self._rng = rng
        self._block = block
        self._buf: list[float] = rng.random(block).tolist()
        self._i = 0

    def u(self) -> float:
        i = self._i
        if i == self._block:
            self._buf = self._rng.random(self._block).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    def take(self, k: int) -> list[float]:
        """``k`` uniforms at once, for hot loops that can then iterate them at C speed."""
        i = self._i
        j = i + k
        if j <= self._block:
            self._i = j
            return self._buf[i:j]
        out = self._buf[i:]
        while len(out) < k:
            self._buf = self._rng.random(self._block).tolist()
            need = k - len(out)
            out += self._buf[:need]
            self._i = min(need, self._block)
        return out

    def between(self, a: float, b: float) -> float:
        return a + (b - a) * self.u()

    def exp(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.u())

    def normal(self) -> float:
        # Box-Muller; one of the pair is discarded to keep the stream position simple to reason about.
        return math.sqrt(-2.0 * math.log(1.0 - self.u())) * math.cos(6.283185307179586 * self.u())

    def chance(self, p: float) -> bool:
        return self.u() < p

    def pick(self, cum: tuple[float, ...] | list[float]) -> int:
        return bisect.bisect_right(cum, self.u() * cum[-1])

    def poisson(self, lam: float) -> int:
        if lam <= 0.0:
            return 0
        if lam > 30.0:
            return max(0, int(round(lam + math.sqrt(lam) * self.normal())))
        u = self.u()
        p = math.exp(-lam)
        f = p
        k = 0
        while u > f and k < 200:
            k += 1
            p *= lam / k
            f += p
        return k


def _ss_rng(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _clip_round(x: float, lo: int, hi: int) -> int:
    v = int(math.floor(x + 0.5))
    return lo if v < lo else hi if v > hi else v
