"""`create_sampler`: the one way from a sampler name (or class) and parameters to a sampler, checked before any work.

Like timm's `create_model`: the name is looked up in the entry-point registry, the preset's parameters for that
sampler (`Sampler.preset_params`) are merged under the user's, and every value is checked against the dataclass
field it sets (`alpose_bench.core.validation`) before the sampler is built, so a typo is one line at planning time:

    >>> create_sampler("vl4pose", {"num_peaks": 3})
    VL4Pose(num_peaks=3, min_distance=8, exclude_border=True)
    >>> create_sampler("vl4pose", {"exclude_border": "ture"})
    ConfigError: sampler 'vl4pose': exclude_border must be true or false, got 'ture'

The planner, `diagnose` and `bench` all build samplers through this function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from alpose_bench.core.validation import ParameterError, check_fields
from alpose_bench.samplers.base import Sampler
from alpose_bench.spec.config import ConfigError


def sampler_class(sampler: str | type[Sampler]) -> type[Sampler]:
    """The class behind a registered name (UnknownNameError lists the known ones), or the class itself."""
    from alpose_bench.spec.registry import get_sampler

    cls = get_sampler(sampler) if isinstance(sampler, str) else sampler
    if not (isinstance(cls, type) and issubclass(cls, Sampler)):
        raise ConfigError(f"{sampler!r} is not a sampler class (a subclass of alpose_bench.samplers.Sampler)")
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(
            f"sampler {cls.__name__} must be a @dataclass (its fields are its hyper-parameters)"
        )
    return cls


def sampler_params(
    sampler: str | type[Sampler], params: Mapping[str, Any] | None = None, preset: str | None = None
) -> dict[str, Any]:
    """The checked parameters `create_sampler` would build with: the preset's for this sampler, then `params`."""
    cls = sampler_class(sampler)
    merged = {**cls.preset_params.get(preset or "", {}), **(params or {})}
    try:
        return check_fields(cls, merged, f"sampler {cls.name!r}")
    except ParameterError as exc:
        raise ConfigError(str(exc)) from None


def create_sampler(
    sampler: str | type[Sampler], params: Mapping[str, Any] | None = None, preset: str | None = None
) -> Sampler:
    """Build a sampler from its registered name or class, the preset's parameters and `params` (which win).

    Unknown parameters, values of the wrong type or out of range are a one-line ConfigError."""
    cls = sampler_class(sampler)
    values = sampler_params(cls, params, preset)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:  # a check across parameters in the sampler's own __post_init__
        raise ConfigError(
            f"sampler {cls.name!r}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None
