"""Plugin registry: samplers and datasets discovered through Python entry points.

Built-in samplers and datasets are registered in this package's own pyproject through the same entry-point groups
any third-party package uses (``alpose_bench.samplers``, ``alpose_bench.datasets``), like timm's model registry but
across packages. A plugin that fails to import does not break the registry: it is reported by `broken()` and by
`alpose-bench list`, and naming it gives its import error.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from alpose_bench.core.failures import UserFacingError

if TYPE_CHECKING:
    from alpose_bench.pose.data import DatasetPlugin
    from alpose_bench.samplers.base import Sampler

SAMPLER_GROUP = "alpose_bench.samplers"
DATASET_GROUP = "alpose_bench.datasets"
BUDGET_MANAGER_GROUP = "alpose_bench.budget_managers"


class UnknownNameError(UserFacingError, LookupError):
    """A sampler or dataset name that no installed plugin provides (the message lists the known ones)."""


class PluginLoadError(UserFacingError, ImportError):
    """A plugin's entry point exists but its code failed to import."""


@dataclass(frozen=True)
class Plugin:
    """One entry point: its name, the object it loads, or the error loading it raised."""

    name: str
    target: str  # "module:attr"
    distribution: str
    obj: object | None
    error: str | None

    @property
    def description(self) -> str:
        """The plugin's one-line description (or why it failed to load)."""
        if self.obj is None:
            return f"(failed to load: {self.error})"
        return getattr(self.obj, "description", "") or (self.obj.__doc__ or "").strip().splitlines()[0]


@cache
def _discover(group: str) -> dict[str, Plugin]:
    found: dict[str, Plugin] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        dist = getattr(getattr(ep, "dist", None), "name", "?")
        try:
            obj, error = ep.load(), None
        except Exception as exc:  # a broken plugin must not take the registry down
            obj = None
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        declared = getattr(obj, "name", ep.name)
        if obj is not None and isinstance(declared, str) and declared != ep.name:
            # the entry point's key and the class's name are one fact: results, heads and checkpoints are keyed
            # by the name, the command line by the key
            obj, error = (
                None,
                (
                    f"its entry point is named {ep.name!r} but the class says name = {declared!r}; register it as "
                    f"'{declared} = {ep.value}' (or set name = {ep.name!r})"
                ),
            )
        found[ep.name] = Plugin(name=ep.name, target=ep.value, distribution=dist, obj=obj, error=error)
    return found


def refresh() -> None:
    """Forget what was discovered (after installing a plugin in the same process)."""
    _discover.cache_clear()


def canonical(name: str) -> str:
    """The spelling-free form of a name: case and `_` / `-` do not matter (`VL4Pose`, `learning_loss`). Registered
    names follow one rule, lower case with hyphens (`learning-loss`, `mc-dropout`)."""
    return name.strip().lower().replace("_", "-")


def _key(group: str, kind: str, name: str) -> str:
    """The registered key that `name` spells (exactly, or up to case and `_` / `-`); UnknownNameError with the
    closest known names otherwise."""
    plugins = _discover(group)
    if name in plugins:
        return name
    by_form = {canonical(k): k for k in plugins}
    by_form.update(  # names a plugin was registered under before (`Sampler.former_names`)
        (canonical(f), k)
        for k, p in plugins.items()
        for f in getattr(p.obj, "former_names", ())
        if isinstance(f, str)
    )
    if canonical(name) in by_form:
        return by_form[canonical(name)]
    known = ", ".join(sorted(plugins)) or "none installed"
    close = difflib.get_close_matches(canonical(name), list(by_form), n=1, cutoff=0.6)
    hint = f" Did you mean {by_form[close[0]]!r}?" if close else ""
    raise UnknownNameError(f"unknown {kind} {name!r}.{hint} Known {kind}s: {known}.")


def sampler_key(name: str) -> str:
    """The registered name of the sampler `name` spells (composites: each part), e.g. `VL4Pose` -> `vl4pose`,
    `MPE+KMeans` -> `mpe+kmeans`; what tasks, results and checkpoints are keyed by."""
    if "+" in name:
        base, _, selector = name.rpartition("+")
        return f"{sampler_key(base)}+{canonical(selector)}"
    return _key(SAMPLER_GROUP, "sampler", name)


def _get(group: str, kind: str, name: str) -> object:
    plugins = _discover(group)
    name = _key(group, kind, name)
    plugin = plugins[name]
    if plugin.obj is None:
        raise PluginLoadError(
            f"{kind} {name!r} ({plugin.target}, from {plugin.distribution}) failed to import: {plugin.error}. "
            "Fix or uninstall that plugin."
        )
    return plugin.obj


def samplers() -> dict[str, Plugin]:
    """Every registered sampler entry point, loaded or broken."""
    return dict(_discover(SAMPLER_GROUP))


def datasets() -> dict[str, Plugin]:
    """Every registered dataset entry point, loaded or broken."""
    return dict(_discover(DATASET_GROUP))


def get_sampler(name: str) -> type[Sampler]:
    """The sampler class registered under `name` (UnknownNameError lists the known ones), or the composite
    `SCORER+SELECTOR` (`alpose_bench.samplers.diverse`: e.g. mpe+kmeans, vl4pose+coreset)."""
    if "+" in name:
        from alpose_bench.samplers.diverse import diverse_class

        base, _, selector = name.rpartition("+")
        try:
            return diverse_class(get_sampler(base), canonical(selector))
        except ValueError as exc:
            raise UnknownNameError(f"sampler {name!r}: {exc}") from None
    return _get(SAMPLER_GROUP, "sampler", name)  # type: ignore[return-value]


def get_dataset(name: str) -> type[DatasetPlugin]:
    """The dataset plugin class registered under `name`."""
    return _get(DATASET_GROUP, "dataset", name)  # type: ignore[return-value]


def budget_managers() -> dict[str, Plugin]:
    """Every registered stream budget manager entry point, loaded or broken."""
    return dict(_discover(BUDGET_MANAGER_GROUP))


def get_budget_manager(name: str) -> type:
    """The stream budget manager class registered under `name` (`alpose_bench.engine.budget`)."""
    return _get(BUDGET_MANAGER_GROUP, "budget manager", name)  # type: ignore[return-value]


def group_members(group: str) -> list[str]:
    """The installed samplers of a group, in reading order (`Sampler.order`): "all" holds every one; another
    group the samplers that name it in `Sampler.groups` ("default": the baseline, VL4Pose, MPE, TypiClust — the
    low-budget reference — and the two references that tell the regime)."""
    members = [
        (getattr(p.obj, "order", 1000), n) for n, p in samplers().items()
        if p.obj is not None and (group == "all" or group in getattr(p.obj, "groups", ()))
    ]  # fmt: skip
    return [n for _, n in sorted(members)]


def working_samplers() -> list[str]:
    """Names of the samplers that import cleanly, sorted."""
    return sorted(n for n, p in samplers().items() if p.obj is not None)
