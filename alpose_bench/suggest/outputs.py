"""What `suggest` writes: the ranked CSV, a contact sheet of the picks, and the picks in the input's own format.

Per sampler, into the output folder, all files written together (atomically, all or none):

* `<sampler>.csv`: every readable candidate, best first — rank, frame, score, picked, pick (order of the pick),
  why, and the predicted keypoints in frame pixels (`<joint>_x`, `<joint>_y`);
* `<sampler>-picks.png`: the first picks, letterboxed, with the predicted skeleton drawn;
* the picks for the labelling tool: COCO — `<sampler>-picks.json` (the images to annotate, the project's
  category, no annotations); DeepLabCut — `<sampler>-picks.txt` (one `labeled-data/<video>/<file>` per line);
  SLEAP — `<sampler>-suggestions.slp` (the project with its suggestion list replaced by the picks).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alpose_bench.core.atomic import write_all_atomic
from alpose_bench.suggest.project import Frame
from alpose_bench.suggest.suggester import Ranking, Suggestions

TILE = 192
COLUMNS = 6


def ranking_table(found: Suggestions, ranking: Ranking) -> pd.DataFrame:
    """The ranked table of one sampler (the CSV's rows)."""
    order = ranking.order()
    pick_number = np.full(len(found.candidates), 0, dtype=np.int64)
    pick_number[ranking.picks] = np.arange(1, len(ranking.picks) + 1)
    table = pd.DataFrame({
        "rank": pd.array(np.arange(1, len(order) + 1), dtype="Int64"),
        "frame": [found.candidates[k].key for k in order],
        "score": ranking.scores[order],
        "picked": pick_number[order] > 0,
        "pick": pd.array(np.where(pick_number[order] > 0, pick_number[order], 0), dtype="Int64"),
        "why": [ranking.reasons[k] for k in order],
    })  # fmt: skip
    table.loc[~table["picked"], "pick"] = pd.NA
    table.loc[np.arange(len(order)) >= ranking.ranked, "rank"] = pd.NA
    for j, name in enumerate(found.project.skeleton.joints):
        table[f"{name}_x"] = np.round(found.predicted[order, j, 0], 2)
        table[f"{name}_y"] = np.round(found.predicted[order, j, 1], 2)
    return table


def contact_sheet(found: Suggestions, ranking: Ranking, count: int) -> bytes:
    """A PNG grid of the first `count` picks, each letterboxed with its predicted skeleton, pick number, score and
    reason."""
    from PIL import Image, ImageDraw

    picks = ranking.picks[:count]
    rows = max(1, math.ceil(len(picks) / COLUMNS))
    caption = 44
    sheet = Image.new("RGB", (COLUMNS * TILE, rows * (TILE + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    links = found.project.skeleton.links
    for n, k in enumerate(picks):
        x0, y0 = (n % COLUMNS) * TILE, (n // COLUMNS) * (TILE + caption)
        tile = Image.fromarray(found.images[k]).resize((TILE, TILE))
        sheet.paste(tile, (x0, y0))
        side = found.boxes[k, 2]
        pts = (found.predicted[k] - found.boxes[k, :2] + side / 2) * (TILE / side)
        for a, b in links:
            draw.line([tuple(pts[a] + (x0, y0)), tuple(pts[b] + (x0, y0))], fill=(255, 140, 0), width=2)
        for p in pts:
            cx, cy = p + (x0, y0)
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=(0, 114, 178))
        score = ranking.scores[k]
        why = ranking.reasons[k].split(" (")[0].replace("least likely ", "").replace("most ambiguous ", "")
        lines = [
            f"#{n + 1} {found.candidates[k].key}",
            f"score {score:.3g}" if np.isfinite(score) else "",
            why,
        ]
        for row, text in enumerate(lines):
            draw.text(
                (x0 + 3, y0 + TILE + 2 + 13 * row), text[:34], fill="black" if row == 0 else (90, 90, 90)
            )
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def _coco_picks(found: Suggestions, frames: list[tuple[Frame, np.ndarray]]) -> bytes:
    source = json.loads(Path(found.project.source).read_text())
    ids = {str(im["file_name"]): im for im in source.get("images", [])}
    next_id = max([int(im.get("id", 0)) for im in source.get("images", [])] + [0]) + 1
    images = []
    for frame, box in frames:
        if frame.key in ids:
            images.append(ids[frame.key])
        else:
            images.append({"id": next_id, "file_name": frame.key, "width": int(round(2 * box[0] + 1)),
                           "height": int(round(2 * box[1] + 1))})  # fmt: skip
            next_id += 1
    categories = source.get("categories", [])
    return json.dumps({"images": images, "annotations": [], "categories": categories}, indent=1).encode()


def _sleap_picks(found: Suggestions, frames: list[tuple[Frame, np.ndarray]]) -> bytes:
    import os
    import tempfile

    import sleap_io as sio

    labels = found.project.labels
    before = list(labels.suggestions)
    labels.suggestions = [
        sio.SuggestionFrame(video=labels.videos[f.video], frame_idx=f.index)
        for f, _ in frames
        if f.video >= 0
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "picks.slp")
            sio.save_slp(labels, path)
            return Path(path).read_bytes()
    finally:
        labels.suggestions = before


def picks_file(found: Suggestions, ranking: Ranking) -> tuple[str, bytes]:
    """(file name suffix, content) of the picks in the project's own format."""
    frames = [(found.candidates[k], found.boxes[k]) for k in ranking.picks]
    fmt = found.project.format
    if fmt == "coco":
        return "picks.json", _coco_picks(found, frames)
    if fmt == "dlc":
        return "picks.txt", "".join(f"{f.key}\n" for f, _ in frames).encode()
    return "suggestions.slp", _sleap_picks(found, frames)


def write_outputs(found: Suggestions, out: Path, sheet_count: int) -> dict[str, list[Path]]:
    """Write every sampler's CSV, contact sheet and picks into `out` (all files or none); sampler -> paths."""
    files: dict[Path, Any] = {}
    written: dict[str, list[Path]] = {}
    for ranking in found.rankings:
        stem = ranking.sampler.replace("+", "-")
        table = ranking_table(found, ranking)
        suffix, picks = picks_file(found, ranking)
        paths = [out / f"{stem}.csv", out / f"{stem}-picks.png", out / f"{stem}-{suffix}"]
        files[paths[0]] = table.to_csv(index=False).encode()
        files[paths[1]] = contact_sheet(found, ranking, sheet_count)
        files[paths[2]] = picks
        written[ranking.sampler] = paths
    write_all_atomic(files)
    return written
