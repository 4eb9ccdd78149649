"""The public contract that plugins and users program against is type-checked and documented.

The surface: the sampler contract and factory (`alpose_bench.samplers`), datasets (`data`), the selection
context (`pool`), the registry, the conformance kit (`testing`), reading results (`results`) and parameter
validation. mypy checks it with the settings in pyproject.toml ([tool.mypy]); every public function, class and
method in it has a docstring.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

SURFACE = [
    "alpose_bench.samplers",
    "alpose_bench.samplers.base",
    "alpose_bench.samplers.factory",
    "alpose_bench.pose.data",
    "alpose_bench.pose.pool",
    "alpose_bench.spec.registry",
    "alpose_bench.testing",
    "alpose_bench.results.read",
    "alpose_bench.core.validation",
]
REPO = Path(__file__).resolve().parents[1]


def test_the_public_contract_type_checks():
    api = pytest.importorskip("mypy.api")
    out, err, status = api.run(["--config-file", str(REPO / "pyproject.toml"), "--no-error-summary"])
    assert status == 0, out + err


def _public_callables(module):
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            yield name, obj
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if inspect.isfunction(target):
                    yield f"{name}.{attr}", target


def test_every_public_function_of_the_contract_has_a_docstring():
    missing = []
    for module_name in SURFACE:
        module = importlib.import_module(module_name)
        assert module.__doc__, f"{module_name} has no module docstring"
        for name, obj in _public_callables(module):
            if not (inspect.getdoc(obj) or "").strip():
                missing.append(f"{module_name}.{name}")
    assert not missing, "no docstring: " + ", ".join(missing)


def test_the_package_says_it_is_typed():
    assert (REPO / "alpose_bench" / "py.typed").exists()
