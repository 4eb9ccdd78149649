"""The roles samplers declare on their classes, looked up by name: which one is the baseline every other is
compared with (`Sampler.baseline`, random), which are references that read the pool's labels and what they seek
(`Sampler.reference`, `seeks`: "hard" or "easy"), and the reading order (`Sampler.order`). Analysis and the figures
both ask here, so the roles are read in one place from the one place they are declared."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from alpose_bench.spec.registry import get_sampler, samplers


@cache
def installed_class(name: str) -> type | None:
    """The class behind a sampler name (registered or composite), or None where it is not installed here."""
    try:
        return get_sampler(name)
    except (LookupError, ImportError):
        return None


@cache
def baseline_name() -> str:
    """The sampler every other is compared with: the installed one that says `baseline = True` (random)."""
    marked = [n for n, p in samplers().items() if getattr(p.obj, "baseline", False)]
    return marked[0] if len(marked) == 1 else "random"


@cache
def reference_name(seeks: str) -> str | None:
    """The installed reference that seeks "hard" (the images the model gets most wrong) or "easy" ones."""
    found = [n for n, p in samplers().items() if getattr(p.obj, "reference", False) and p.obj.seeks == seeks]
    return found[0] if len(found) == 1 else None


def is_reference(name: str) -> bool:
    """True for a reference sampler that reads the pool's labels (`Sampler.reference`): shown apart, never ranked.
    A sampler not installed here counts as a sampler."""
    return bool(getattr(installed_class(name), "reference", False))


def sampler_order(names: Iterable[str]) -> list[str]:
    """Samplers in a fixed reading order (`Sampler.order`: the baseline first, the built-ins in the papers' order,
    then plugins and composites A-Z), the references last."""
    ordered = sorted(set(names), key=lambda n: (getattr(installed_class(n), "order", 1000), n))
    return [n for n in ordered if not is_reference(n)] + [n for n in ordered if is_reference(n)]
