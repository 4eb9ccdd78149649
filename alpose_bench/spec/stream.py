"""The stream protocol's settings and its one budget rule (`alpose_bench.engine.stream` runs it).

Here, below the engine, because the results layer reads them too: a stream experiment's curves are drawn against
the label budget (the labels the device was allowed), and the labels it asked for are recorded beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def allowance(rate: float, frames: int) -> int:
    """Labels a chunk of `frames` frames may ask for at `rate` labels per frame (the budget adherence's
    denominator)."""
    return int(round(rate * frames + 1e-9))


@dataclass(frozen=True)
class StreamProtocol:
    """The stream settings of a spec (`ExperimentSpec.protocol == "stream"`); `chunk` and `rate` None: resolved
    against the pool by `resolved`."""

    order: str
    chunk: int | None
    rate: float | None
    manager: str
    window: int
    buffer: int

    def resolved(self, pool: int, init: int, cycles: int, budget: int) -> StreamProtocol:
        """`chunk` default: the pool beyond the initial set, streamed once over the cycles; `rate` default: the
        pool protocol's budget per chunk (budget / chunk), so both protocols ask for as many labels."""
        chunk = self.chunk if self.chunk is not None else max(1, (pool - init) // max(1, cycles))
        rate = self.rate if self.rate is not None else budget / chunk
        return StreamProtocol(self.order, chunk, rate, self.manager, self.window, self.buffer)

    @property
    def chunk_size(self) -> int:
        assert self.chunk is not None, "resolve the stream protocol first"
        return self.chunk

    @property
    def label_rate(self) -> float:
        assert self.rate is not None, "resolve the stream protocol first"
        return self.rate

    @property
    def per_chunk(self) -> int:
        """Labels one chunk may ask for (`allowance`)."""
        return allowance(self.label_rate, self.chunk_size)


def stream_of(spec: dict[str, Any], pool: int | None = None) -> StreamProtocol | None:
    """The stream settings of a stored or built spec (as a dict; settings it lacks take the value experiments
    stored before them ran with, `config.LEGACY`), or None under the pool protocol; resolved against a pool of
    `pool` images when given."""
    from alpose_bench.spec.config import LEGACY

    def setting(key: str) -> Any:
        return spec.get(key, LEGACY[key])

    if setting("protocol") != "stream":
        return None
    stream = StreamProtocol(
        order=setting("stream_order"), chunk=setting("stream_chunk"), rate=setting("label_rate"),
        manager=setting("budget_manager"), window=setting("stream_window"), buffer=setting("stream_buffer"),
    )  # fmt: skip
    return stream if pool is None else stream.resolved(pool, spec["init"], spec["cycles"], spec["budget"])
