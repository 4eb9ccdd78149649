"""`alpose-bench data check|prepare`: tables, exit statuses and one-line errors (never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from datasets_real_factory import real_lsp_subset, write_lsp_folder

from alpose_bench.cli import cli
from alpose_bench.datasets.coco import COCODataset
from alpose_bench.datasets.icvl import ICVLDataset
from alpose_bench.datasets.lsp import LSPDataset, LSPLSPETDataset
from alpose_bench.datasets.mpii import MPIIDataset
from alpose_bench.datasets.rendered import LSPETRenderedDataset, LSPRenderedDataset
from alpose_bench.spec import registry

PLUGINS = {
    cls.name: cls
    for cls in (
        MPIIDataset,
        LSPDataset,
        LSPLSPETDataset,
        ICVLDataset,
        COCODataset,
        LSPRenderedDataset,
        LSPETRenderedDataset,
    )
}


@pytest.fixture(autouse=True)
def known_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve this area's datasets even before their entry points are installed (pip install -e . adds them)."""
    real = registry.get_dataset

    def get_dataset(name: str):
        try:
            return real(name)
        except registry.UnknownNameError:
            if name in PLUGINS:
                return PLUGINS[name]
            raise

    monkeypatch.setattr(registry, "get_dataset", get_dataset)


def run(*args: str):
    return CliRunner().invoke(cli, ["data", *args], obj={}, env={"COLUMNS": "250"})


def test_check_rendered_real_files_is_usable(shared_data: Path) -> None:
    result = run("check", "lspet-rendered", "--data-root", str(shared_data))
    assert result.exit_code == 0, result.output
    assert "11,000" in result.output and "lspet people" in result.output and "10,000" in result.output
    assert "lspet-rendered is usable" in result.output


def test_check_without_images_exits_2_with_the_reason(shared_data: Path) -> None:
    result = run("check", "lsp", "--data-root", str(shared_data))
    assert result.exit_code == 2
    assert "2,000" in result.output and "images missing" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: 2000 of 2000 images missing") and "sam.johnson.io" in last
    assert "Traceback" not in result.output


def test_check_malformed_annotations(tmp_path: Path) -> None:
    (tmp_path / "lsp").mkdir()
    (tmp_path / "lsp" / "joints.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    result = run("check", "lsp-rendered", "--data-root", str(tmp_path))
    assert result.exit_code == 2 and "malformed" in result.output
    assert "corrupt or truncated" in result.output.strip().splitlines()[-1]


def test_unknown_dataset_lists_known_ones() -> None:
    result = run("check", "lsp-extended")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown dataset 'lsp-extended'" in result.output and "Known datasets:" in result.output


def test_bad_option_syntax_and_unknown_option(shared_data: Path) -> None:
    result = run("check", "lsp-rendered", "--data-root", str(shared_data), "--option", "crop_scale")
    assert result.exit_code == 2 and "--option expects KEY=VALUE" in result.output
    result = run("check", "lsp-rendered", "--data-root", str(shared_data), "--option", "scale=2")
    assert result.exit_code == 2 and "has no option 'scale'" in result.output


def test_prepare_builds_then_reuses_the_cache(tmp_path: Path, shared_data: Path) -> None:
    root = tmp_path / "root"
    write_lsp_folder(root, "lsp", real_lsp_subset(shared_data, "lsp", 20), images=False)
    args = (
        "prepare",
        "lsp-rendered",
        "--data-root",
        str(root),
        "--resolution",
        "16",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "pool" in result.output and "16 x 16 x 3 uint8" in result.output
    # not a terminal: progress as timestamped lines a log keeps (the last one at the end), not a bar
    assert "preparing lsp-rendered: 20/20 images" in result.output
    files = list((tmp_path / "c" / "lsp-rendered").glob("*.npz"))
    assert len(files) == 1 and str(files[0]) in result.output.replace("\n", "")
    mtime = files[0].stat().st_mtime_ns
    assert run(*args).exit_code == 0 and files[0].stat().st_mtime_ns == mtime  # cache hit: not rewritten
    assert run(*args, "--force").exit_code == 0 and files[0].stat().st_mtime_ns != mtime


def test_prepare_with_missing_images_is_one_line(tmp_path: Path, shared_data: Path) -> None:
    write_lsp_folder(tmp_path, "lsp", real_lsp_subset(shared_data, "lsp", 4), images=False)
    result = run("prepare", "lsp", "--data-root", str(tmp_path), "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Error: dataset 'lsp': 4 of 4 images are missing" in result.output


def test_entry_points_are_installed() -> None:
    """`alpose-bench list` and `--dataset NAME` find every real dataset (pyproject entry points, pip install -e .)."""
    found = registry.datasets()
    missing = sorted(set(PLUGINS) - set(found))
    assert not missing, f"dataset entry points not installed: {missing}; add them to pyproject and reinstall"
    for name, cls in PLUGINS.items():
        assert found[name].obj is cls
