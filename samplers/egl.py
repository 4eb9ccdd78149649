"""EGL++ (Shukla, WACV 2022): expected gradient length with the labels of t-SNE neighbours as candidate labels.

For every unlabelled image x the candidate labels y_1..y_k are the labels of its k most probable labelled
neighbours in the pose model's embedding space, weighted by t-SNE conditional probabilities p(j|x) (per-row
Gaussian bandwidth found by bisection to hit a target perplexity). The score is

    score(x) = sum_k p_k * || d l(x, y_k) / d theta ||^2

with theta the weights and biases of every Conv2d/Linear layer (BatchNorm excluded, as the reference's
autograd_hacks) and l the pose loss: heatmap MSE averaged over stacks (targets: the neighbours' *predicted*
heatmaps of each stack, or their ground truth with og_heatmap=True), or for 3D regression the squared joint
error against the neighbours' predicted (or true) normalised keypoints. The images with the highest score are
annotated.

Reference quirks reproduced by default (§3.7 and §7.8 of the reference notes): perplexity is computed as 2^H with
H in nats (`reference_perplexity=False` uses the textbook e^H); the top-k probabilities are not renormalised.

Two implementations of the gradient norms:
- `egl_scores` (used by the sampler): one forward per image and k vector-Jacobian products whose cotangents are
  the analytic loss gradients w.r.t. the output for each neighbour's target, vmapped (torch.func) over the k
  neighbours and over the images of a batch; the model stays in eval mode (BatchNorm uses running statistics).
- `egl_scores_replica` (kept for the benchmark): the reference's method, replicating each image k times,
  one forward of the k replicas, one autograd.grad per replica. Same numbers, much slower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp, vmap

from alpose_bench.core.validation import param
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, Selection, select_top

# -- neighbours and their t-SNE probabilities --------------------------------------------------------------------


def conditional_probabilities(
    sq_dist: Tensor,
    perplexity: float = 20.0,
    tolerance: float = 1e-3,
    max_iter: int = 100,
    base: float = 2.0,
    upper: float | None = None,
) -> Tensor:
    """t-SNE conditional probabilities p(j|i) (rows sum to 1) from squared distances (N, M), as the reference.

    p(j|i) ~ exp(-d_ij^2 / 2 sigma_i^2), clamped to [1e-20, 1] before and [1e-30, 1] after normalising; each row's
    sigma_i is bisected on [0, upper] (default: 5 * max(max d^2, max d), the reference's bound) until
    |base^H_i - perplexity| < tolerance, H_i the entropy in nats, for all rows or `max_iter` steps; rows that are
    within tolerance stop moving. The reference uses base 2 with H in nats; base e is the textbook perplexity.
    """
    if sq_dist.ndim != 2:
        raise ValueError(f"sq_dist must be (N, M), got shape {tuple(sq_dist.shape)}")
    if not perplexity > 0 or not tolerance > 0 or max_iter < 0 or not base > 1:
        raise ValueError(
            f"need perplexity > 0, tolerance > 0, max_iter >= 0, base > 1; got {perplexity}, {tolerance}, "
            f"{max_iter}, {base}"
        )
    n = sq_dist.shape[0]
    if upper is None:
        upper = 5.0 * float(torch.maximum(sq_dist.max(), sq_dist.max().sqrt())) if sq_dist.numel() else 1.0
    lo = torch.zeros(n, dtype=sq_dist.dtype, device=sq_dist.device)
    hi = torch.full_like(lo, upper)
    log_base = math.log(base)

    def evaluate(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        sigma = (lo + hi) / 2
        p = torch.exp(-sq_dist / (2 * sigma[:, None] ** 2)).clamp(1e-20, 1.0)
        p = (p / p.sum(dim=1, keepdim=True)).clamp(1e-30, 1.0)
        entropy = -(p * p.log()).sum(dim=1)
        return torch.exp(entropy * log_base), p

    perp, probs = evaluate(lo, hi)
    for _ in range(max_iter):
        gap = perp - perplexity
        if bool((gap.abs() < tolerance).all()):
            break
        too_flat, too_sharp = gap > tolerance, gap < -tolerance
        half = (hi - lo) / 2
        hi, lo = torch.where(too_flat, hi - half, hi), torch.where(too_sharp, lo + half, lo)
        perp, probs = evaluate(lo, hi)
    return probs


def _sq_cdist(a: Tensor, b: Tensor) -> Tensor:
    return (
        torch.einsum("ij,ij->i", a, a)[:, None] + torch.einsum("ij,ij->i", b, b)[None, :] - 2 * a @ b.T
    ).clamp(min=0)


def egl_neighbours(
    pool_emb: Tensor,
    labelled_emb: Tensor,
    k: int = 30,
    perplexity: float = 20.0,
    tolerance: float = 1e-3,
    base: float = 2.0,
    max_elements: int = 2**22,
) -> tuple[Tensor, Tensor]:
    """For each pool embedding, its top-`k` labelled neighbours: (probabilities (N, k), positions (N, k)).

    Probabilities are `conditional_probabilities` over all labelled images, sorted descending, not renormalised
    after the cut (reference). Computed in float64 in row blocks of about `max_elements` distances, so the
    pool x labelled matrix never exists whole; the bisection bound uses the global maximum distance (reference).
    """
    if len(labelled_emb) == 0:
        raise ValueError("EGL++ needs labelled images: their labels are the candidate labels")
    k = min(k, len(labelled_emb))
    pool_emb, labelled_emb = pool_emb.double(), labelled_emb.double()
    rows = max(1, max_elements // len(labelled_emb))
    blocks = range(0, len(pool_emb), rows)
    max_sq = max((float(_sq_cdist(pool_emb[i : i + rows], labelled_emb).max()) for i in blocks), default=0.0)
    upper = 5.0 * max(max_sq, math.sqrt(max_sq))
    probs, index = [], []
    for i in blocks:
        sq = _sq_cdist(pool_emb[i : i + rows], labelled_emb)
        p = conditional_probabilities(sq, perplexity, tolerance, base=base, upper=upper)
        values, idx = torch.topk(p, k, dim=1, largest=True, sorted=True)
        probs.append(values)
        index.append(idx)
    if not probs:
        return pool_emb.new_zeros((0, k)), torch.zeros((0, k), dtype=torch.long)
    return torch.cat(probs), torch.cat(index)


# -- gradient norms ---------------------------------------------------------------------------------------------


def grad_param_names(model: nn.Module) -> list[str]:
    """Names of the parameters EGL++ differentiates: weights and biases of Conv2d and Linear layers."""
    names = []
    for prefix, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            for pname, p in module.named_parameters(recurse=False):
                if p.requires_grad:
                    names.append(f"{prefix}.{pname}" if prefix else pname)
    if not names:
        raise ValueError(f"{type(model).__name__} has no Conv2d/Linear parameters to take gradients of")
    return names


def _outputs(out) -> tuple[Tensor, ...]:
    return tuple(out.heatmaps) if out.heatmaps is not None else (out.keypoints,)


def _check_targets(targets: Sequence[Tensor], weights: Tensor, mask: Tensor | None) -> None:
    b, k = weights.shape
    for t in targets:
        if t.shape[:2] != (b, k):
            raise ValueError(f"targets must be (B, k, ...) = ({b}, {k}, ...), got {tuple(t.shape)}")
    if mask is not None and mask.shape != targets[0].shape[:3]:
        raise ValueError(f"mask must be (B, k, J) = {tuple(targets[0].shape[:3])}, got {tuple(mask.shape)}")


def neighbour_losses(outs: Sequence[Tensor], targets: Sequence[Tensor], mask: Tensor | None) -> Tensor:
    """Loss of one image's outputs (each (1, ...)) against each of k candidate labels (each (k, ...)): (k,).

    Heatmaps (several outputs = stacks): MSE over joints x pixels, averaged over stacks (the reference's
    ``heatmap_loss(..., egl=True)``). Keypoints (one (1, J, 3) output, `mask` (k, J)): squared Euclidean error
    averaged over the masked joints (the project's regression pose loss).
    """
    if mask is None:
        per_stack = [(o - t).pow(2).flatten(1).mean(dim=1) for o, t in zip(outs, targets)]
        return torch.stack(per_stack, dim=1).mean(dim=1)
    sq = (outs[0] - targets[0]).pow(2).sum(dim=-1) * mask
    return sq.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _cotangents(
    outs: tuple[Tensor, ...], targets: tuple[Tensor, ...], mask: Tensor | None
) -> tuple[Tensor, ...]:
    """d neighbour_losses / d outputs for each of the k labels, analytically: each (k, 1, ...)."""
    if mask is None:
        scale = 2.0 / len(outs)
        return tuple(scale * (o - t[:, None]) / o.numel() for o, t in zip(outs, targets))
    norm = mask.sum(dim=1).clamp(min=1.0)[:, None, None, None]
    return (2.0 * mask[:, None, :, None] * (outs[0] - targets[0][:, None]) / norm,)


def egl_scores(
    model: nn.Module,
    images: Tensor,
    targets: Sequence[Tensor],
    weights: Tensor,
    mask: Tensor | None = None,
    neighbour_chunk: int | None = None,
) -> Tensor:
    """EGL++ scores (B,) = sum_k weights[b, k] * ||grad_theta loss(images[b], targets[:, b, k])||^2 (fast path).

    images (B, C, H, W); targets: one (B, k, ...) tensor per model output (heatmaps: per stack; regression: one
    (B, k, J, 3)); weights (B, k); mask (B, k, J) for regression targets (None for heatmaps). theta: the
    Conv2d/Linear weights and biases. One forward per image and k vector-Jacobian products with the analytic
    loss gradients as cotangents, vmapped over k (in chunks of `neighbour_chunk`) and over the B images; the
    model is run in eval mode and left unchanged.
    """
    _check_targets(targets, weights, mask)
    names = set(grad_param_names(model))
    diff = {n: p.detach() for n, p in model.named_parameters() if n in names}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in names}
    frozen.update(dict(model.named_buffers()))
    targets = tuple(t.to(images.dtype) for t in targets)
    weights = weights.to(images.dtype)
    if mask is None:
        mask_in: Tensor = weights.new_zeros(weights.shape)  # placeholder, unused for heatmaps
    else:
        mask_in = mask.to(images.dtype)
    use_mask = mask is not None

    def per_image(x: Tensor, tgts: tuple[Tensor, ...], w: Tensor, m: Tensor) -> Tensor:
        outs, vjp_fn = vjp(lambda p: _outputs(functional_call(model, {**p, **frozen}, (x[None],))), diff)[:2]
        cts = _cotangents(outs, tgts, m if use_mask else None)

        def sq_norm(*ct: Tensor) -> Tensor:
            (grads,) = vjp_fn(ct)
            return sum(g.pow(2).sum() for g in grads.values())

        return (w * vmap(sq_norm, chunk_size=neighbour_chunk)(*cts)).sum()

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # vjp builds its own graph; nothing else needs one
            return vmap(per_image)(images, targets, weights, mask_in)
    finally:
        model.train(was_training)


def egl_scores_replica(
    model: nn.Module, images: Tensor, targets: Sequence[Tensor], weights: Tensor, mask: Tensor | None = None
) -> Tensor:
    """The same scores as `egl_scores`, computed as the reference does (slow; kept for the benchmark).

    For each image: replicate it k times, one forward of the k replicas, the loss of replica r against label r,
    and one torch.autograd.grad per replica for its per-sample gradient (the reference gets the same per-sample
    gradients from autograd_hacks' backward hooks).
    """
    _check_targets(targets, weights, mask)
    names = set(grad_param_names(model))
    params = [p for n, p in model.named_parameters() if n in names]
    was_training = model.training
    model.eval()
    scores = []
    try:
        for i in range(len(images)):
            k = weights.shape[1]
            out = model(images[i : i + 1].expand(k, *images.shape[1:]))
            outs = _outputs(out)
            tgts = [t[i].to(images.dtype) for t in targets]
            if mask is None:
                losses = neighbour_losses(outs, tgts, None)
            else:
                m = mask[i].to(images.dtype)
                losses = (outs[0] - tgts[0]).pow(2).sum(dim=-1).mul(m).sum(dim=1) / m.sum(dim=1).clamp(
                    min=1.0
                )
            norms = []
            for r in range(k):
                grads = torch.autograd.grad(losses[r], params, retain_graph=r < k - 1, allow_unused=True)
                norm = torch.zeros((), dtype=images.dtype, device=images.device)
                for g in grads:
                    if g is not None:
                        norm = norm + g.pow(2).sum()
                norms.append(norm)
            scores.append((weights[i].to(images.dtype) * torch.stack(norms)).sum().detach())
    finally:
        model.train(was_training)
    return torch.stack(scores) if scores else images.new_zeros(0)


# -- the sampler ------------------------------------------------------------------------------------------------


def _param_count(model: nn.Module) -> int:
    names = set(grad_param_names(model))
    return sum(p.numel() for n, p in model.named_parameters() if n in names)


def _activation_count(model: nn.Module, x: Tensor) -> int:
    """Elements of all leaf-module outputs for the input `x` (one image): what one backward may hold."""
    total = [0]

    def hook(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, Tensor):
            total[0] += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0]


def plan_steps(pair_bytes: int, k: int, memory_mb: float, max_images: int = 64) -> tuple[int, int | None]:
    """(images per vmapped step, neighbour chunk or None) so that one step stays within about `memory_mb`.

    `pair_bytes` is the memory of one (image, neighbour) pair: its per-sample gradient and backward activations.
    """
    budget = memory_mb * 2**20
    per_image = max(1, pair_bytes * k)
    if per_image <= budget:
        return int(max(1, min(max_images, budget // per_image))), None
    return 1, int(max(1, budget // max(1, pair_bytes)))


@dataclass
class EGLPP(Sampler):
    """EGL++: expected gradient length over candidate labels borrowed from t-SNE neighbours in the labelled set."""

    name = "egl"
    colour = "#009E73"
    marker = "D"
    order = 3
    label = "EGL++"
    description = "EGL++: expected gradient length with labels of t-SNE neighbours (Shukla, WACV 2022)."
    per_frame = (
        False  # its score compares each image's gradient with its labelled neighbours: a buffer's work
    )
    needs = frozenset({"embedding", "heatmaps", "keypoints", "model"})
    works_without_labelled = False
    # its per-image cost is a forward pass plus k gradient computations: the CPU presets score a random subset
    preset_params = {"smoke": {"candidates": 16}, "quick": {"candidates": 50}, "cpu": {"candidates": 150},
                     "pretrained": {"candidates": 150}}  # fmt: skip

    perplexity: float = param(20.0, low=0, low_open=True)  # target perplexity of p(j|i) (reference)
    tolerance: float = param(
        1e-3, low=0, low_open=True
    )  # bisection stops this close to the perplexity (reference)
    k: int = param(
        30, low=1
    )  # neighbours kept as candidate labels (reference); at most the labelled-set size
    og_heatmap: bool = False  # True: neighbours' ground truth instead of their predictions as labels
    reference_perplexity: bool = True  # True: perplexity = 2^H with H in nats (reference); False: e^H
    # score only a seeded random subset of this many pool images; the others rank last
    candidates: int | None = param(None, low=1)
    # rough bound of one vmapped step (per-sample gradients + backward activations)
    memory_mb: float = param(1024.0, low=0, low_open=True)

    def select(self, ctx: SelectionContext, budget: int) -> Selection:
        if len(ctx.labelled) == 0:
            raise ValueError(
                "EGL++ needs labelled images (their labels are the candidate labels); start from a non-empty "
                "initial labelled set"
            )
        n = len(ctx.pool)
        if budget <= 0 or n == 0:
            return Selection(np.zeros(0, dtype=np.int64))
        if budget >= n:  # everything is selected: no need to score
            return Selection(np.arange(n, dtype=np.int64))
        scored = np.arange(n)
        if self.candidates is not None and self.candidates < n:
            scored = np.sort(ctx.rng.choice(n, size=self.candidates, replace=False))
        scores = np.full(n, -np.inf)
        scores[scored] = self.score(ctx, scored)
        return select_top(scores, budget)

    def score(self, ctx: SelectionContext, positions: np.ndarray | None = None) -> np.ndarray:
        """EGL++ scores of the given pool positions (all when None; higher = annotate first)."""
        if positions is None:
            positions = np.arange(len(ctx.pool))
        device = ctx.device
        pool_emb = torch.from_numpy(np.ascontiguousarray(ctx.collect("pool", "embedding")[positions]))
        labelled_emb = torch.from_numpy(np.ascontiguousarray(ctx.collect("labelled", "embedding")))
        base = 2.0 if self.reference_perplexity else math.e
        probs, nbr = egl_neighbours(
            pool_emb.to(device), labelled_emb.to(device), self.k, self.perplexity, self.tolerance, base
        )
        used = torch.unique(nbr).cpu().numpy()  # labelled positions that are someone's neighbour
        labels, label_mask = self._labels(ctx, used)
        row = torch.full((len(ctx.labelled),), -1, dtype=torch.long)
        row[torch.from_numpy(used)] = torch.arange(len(used))
        nbr_rows = row[nbr.cpu()].to(device)  # (N, k) rows into `labels`

        x1 = ctx.images("pool", positions[:1])
        pair_bytes = (_param_count(ctx.model) + _activation_count(ctx.model, x1)) * x1.element_size()
        # CPUs are fastest with a few images per vmapped step, GPUs with as many as fit
        most = 64 if device.type == "cuda" else 8
        step, chunk = plan_steps(pair_bytes, probs.shape[1], self.memory_mb, max_images=most)
        out = np.empty(len(positions))
        ctx.forward_passes += len(positions)  # one forward per image (the k neighbours are backward passes)
        for start in range(0, len(positions), step):
            sl = slice(start, start + step)
            images = ctx.images("pool", positions[sl])
            idx = nbr_rows[sl]
            tgts = [t[idx] for t in labels]
            mask = None if label_mask is None else label_mask[idx]
            out[sl] = (
                egl_scores(ctx.model, images, tgts, probs[sl].float(), mask, chunk).double().cpu().numpy()
            )
        return out

    def _labels(self, ctx: SelectionContext, used: np.ndarray) -> tuple[list[Tensor], Tensor | None]:
        """Candidate labels of the labelled positions `used`: per model output (len(used), ...), and a joint mask."""
        ds = ctx.dataset
        if self.og_heatmap:
            rows = ctx.labelled[used]
            kp = torch.from_numpy(ds.train.keypoints[rows]).float()
            vis = torch.from_numpy(ds.train.visible[rows]).float()
            if ds.task == "regression3d":
                return [(kp / ds.cube_mm).to(ctx.device)], vis.to(ctx.device)
            from alpose_bench.pose.heatmaps import HeatmapCodec
            from alpose_bench.pose.models import model_info

            info = model_info(ctx.model)
            assert info.heatmap_size is not None
            # the targets the model was trained on: the run's codec (sigma, peak height), else the reference's
            codec = ctx.codec or HeatmapCodec.reference(info.input_size, int(info.heatmap_size))
            hm = codec.encode(kp, vis)[1].to(ctx.device)
            batches = ctx.batches("labelled", used[:1])
            stacks = len(next(batches).out.stack_heatmaps)
            batches.close()
            return [hm] * stacks, None
        if ds.task == "regression3d":
            kp = torch.from_numpy(ctx.collect("labelled", "keypoints")[used]).to(ctx.device)
            return [kp], torch.ones(kp.shape[:2], device=ctx.device)
        parts: list[list[Tensor]] = []
        for b in ctx.batches("labelled", used):
            parts.append([h.to(ctx.device) for h in b.out.stack_heatmaps])
        return [torch.cat([p[s] for p in parts]) for s in range(len(parts[0]))], None
