"""Reports as JSON: one conversion of report dataclasses to plain JSON values, and one writer.

`alpose-bench bench --json` and `diagnose --json` both write through `write_report_json`: numpy scalars become
Python numbers, NaN and infinities become null (JSON has neither), tuples and paths become lists and strings.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers, NaN/inf as None, tuples as lists, paths as strings."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def report_dict(report: Any) -> dict[str, Any]:
    """A report dataclass as plain JSON values."""
    return json_safe(dataclasses.asdict(report))


def write_report_json(report: Any, path: str | Path) -> Path:
    """Write `report_dict(report)` to `path` as indented JSON (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_dict(report), indent=2) + "\n")
    return path
