"""Virtual time: an asyncio loop whose clock jumps to the next timer whenever nothing is ready.

    VirtualLoop.time() ─▶ VirtualClock.now            (what asyncio's timers, sleeps and timeouts read)
    time.monotonic / perf_counter / time, datetime.now ─▶ the same clock, while `virtual_time` is active

The loop's selector never waits: asked to wait `timeout` seconds, it moves the clock on by `timeout` and
returns no I/O. Asked to wait forever (nothing ready, no timer), the simulation is deadlocked; turning MAX_SPINS
times without time passing, it is in a busy loop: either way, `Stalled`.
The product reads its clock through the `time` module and `datetime.now`, and a few of its functions bound
`time.monotonic` as a default argument or a dataclass default factory when they were defined; `virtual_time`
replaces every one of those for the length of a run and puts the originals back afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import selectors
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

EPOCH_S = 1_790_000_000.0  # what time.time() reads at virtual 0 (2026-09-21)
MAX_SPINS = 200_000  # a run turns the loop a few thousand times between two timers at most


class Stalled(RuntimeError):
    """Every task waits on something that no timer and no I/O can bring: a deadlock."""


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH_S + self.now

    def monotonic_ns(self) -> int:
        return int(self.now * 1e9)

    def wall_ns(self) -> int:
        return int(self.wall() * 1e9)


class _JumpingSelector(selectors.SelectSelector):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock
        self._spins = 0  # loop turns in a row without time passing
        self.next_timer: Callable[[], float | None] = lambda: None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Stalled("no task is ready and no timer is due")
        # asyncio runs a timer due within its clock resolution at once: the clock must read that timer's time
        # (a real clock gets there by itself), or code that waits until a time just ahead would spin forever
        due = self.next_timer()
        target = max(self._clock.now + timeout, due if due is not None else -math.inf)
        if target > self._clock.now:
            self._clock.now = target
            self._spins = 0
        elif (spins := self._spins + 1) > MAX_SPINS:
            raise Stalled(f"{MAX_SPINS} loop turns without time passing: a busy loop")
        else:
            self._spins = spins
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        selector = _JumpingSelector(clock)
        super().__init__(selector)
        self._virtual = clock
        selector.next_timer = self._next_timer

    def _next_timer(self) -> float | None:
        """The earliest timer's time, if asyncio will run it this turn (it reads `_scheduled`, a heap)."""
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if scheduled and scheduled[0].when() <= self._virtual.now + self._clock_resolution:  # type: ignore[attr-defined]
            return float(scheduled[0].when())
        return None

    def time(self) -> float:
        return self._virtual.now


def _virtual_datetime(clock: VirtualClock) -> type[dt.datetime]:
    class VirtualDatetime(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> VirtualDatetime:
            return cls.fromtimestamp(clock.wall(), tz)

        @classmethod
        def utcnow(cls) -> VirtualDatetime:
            return cls.fromtimestamp(clock.wall(), dt.UTC).replace(tzinfo=None)

    return VirtualDatetime


@contextlib.contextmanager
def virtual_time(clock: VirtualClock, packages: tuple[str, ...] = ("service",)) -> Iterator[None]:
    """The product's clocks read `clock` inside the block."""
    swaps: dict[Any, Callable[..., Any]] = {
        time.monotonic: clock.monotonic,
        time.perf_counter: clock.monotonic,
        time.time: clock.wall,
        time.monotonic_ns: clock.monotonic_ns,
        time.perf_counter_ns: clock.monotonic_ns,
        time.time_ns: clock.wall_ns,
    }
    undo: list[Callable[[], None]] = []
    try:
        for original, virtual in swaps.items():
            undo.append(_set(time, original.__name__, virtual))
        fake = _virtual_datetime(clock)
        for module in [m for name, m in sys.modules.items() if name.split(".")[0] in packages]:
            if getattr(module, "datetime", None) is dt.datetime:
                undo.append(_set(module, "datetime", fake))
            for function in _functions(module):
                undo.extend(_rebind(function, swaps))
        yield
    finally:
        for step in reversed(undo):
            step()


def _set(owner: Any, name: str, value: Any) -> Callable[[], None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    return lambda: setattr(owner, name, old)


def _functions(module: Any) -> Iterator[Any]:
    """The module's own functions, and its own classes' methods (and dataclass __init__s)."""
    for value in list(vars(module).values()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if isinstance(value, type):
            yield from (v for v in vars(value).values() if hasattr(v, "__code__"))
        elif hasattr(value, "__code__"):
            yield value


def _rebind(function: Any, swaps: dict[Any, Callable[..., Any]]) -> list[Callable[[], None]]:
    """Swap clocks bound at definition time: default arguments and closure cells."""
    undo: list[Callable[[], None]] = []
    defaults = function.__defaults__
    if defaults and any(_swap(d, swaps) is not None for d in defaults):
        function.__defaults__ = tuple(_swap(d, swaps) or d for d in defaults)
        undo.append(lambda: setattr(function, "__defaults__", defaults))
    for cell in function.__closure__ or ():
        with contextlib.suppress(ValueError):  # an empty cell
            content = cell.cell_contents
            if (virtual := _swap(content, swaps)) is not None:
                cell.cell_contents = virtual
                undo.append(lambda cell=cell, content=content: setattr(cell, "cell_contents", content))
    return undo


def _swap(value: object, swaps: dict[Any, Callable[..., Any]]) -> Callable[..., Any] | None:
    """The virtual clock for one of the real ones (by identity: a default may be unhashable)."""
    return next((virtual for real, virtual in swaps.items() if value is real), None)
