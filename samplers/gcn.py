"""Sequential GCN samplers (Caramalau, Bhattarai & Kim, "Sequential graph convolutional network for active
learning", CVPR 2021, code `razvancaramalau/Sequential-GCN-for-Active-Learning`): `coregcn` and `uncertaingcn`.

Per cycle, as the reference's `query_samples`:

1. candidates: a random `candidates` of the unlabelled pool (the reference's SUBSET = 10,000, and never fewer
   than the budget; None = the whole pool), then the labelled images; their pooled embeddings, L2-normalised;
2. the graph: A = X Xᵀ − I, each column divided by its sum, + I (the reference's `aff_to_adj`);
3. a two-layer GCN (X → relu(Â X W₁) → dropout 0.3 → Â · W₃ → sigmoid; 128 hidden units) trained 200 Adam steps
   (lr 1e-3, weight decay 5e-4) as a labelled (1) vs unlabelled (0) classifier with the reference's loss
   −mean log s(labelled) − λ mean log(1 − s(unlabelled)), λ = 1.2;
4. `uncertaingcn`: the candidates whose score is closest to the margin 0.1; `coregcn`: k-center greedy from the
   labelled images (`alpose_bench.samplers.coreset.kcenter_greedy`) on the GCN's node embeddings (its hidden
   layer and score, the third output of the reference's GCN.forward), as the paper describes. The reference code
   overwrites those with the input features before its k-center step: `features="input"` reproduces that.

Task-agnostic (it reads only the embedding), so it runs on 2D and 3D datasets. The dense graph costs O(N²) memory for
N = candidates + labelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from alpose_bench.core.seeds import derive_seed
from alpose_bench.core.validation import param
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, Selection
from alpose_bench.samplers.coreset import kcenter_greedy


def affinity_adjacency(features: Tensor) -> Tensor:
    """The reference's `aff_to_adj`: A = X Xᵀ − I, columns divided by their sums, then + I."""
    adj = features @ features.T - torch.eye(len(features), dtype=features.dtype, device=features.device)
    adj = adj / adj.sum(dim=0, keepdim=True)
    return adj + torch.eye(len(features), dtype=features.dtype, device=features.device)


class GraphConvolution(nn.Module):
    """Â X W + b (Kipf & Welling 2017), initialised uniformly in ±1/sqrt(out) as the reference."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(out_features)
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        return adj @ (x @ self.weight) + self.bias


class GCN(nn.Module):
    """The reference's GCN: relu(gc1) -> dropout -> gc3 -> sigmoid; returns (score, node embedding), the embedding
    being the reference's third output: the hidden layer and gc3's value before the sigmoid."""

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.gc1 = GraphConvolution(in_features, hidden)
        self.gc3 = GraphConvolution(hidden, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, adj: Tensor) -> tuple[Tensor, Tensor]:
        feat = self.dropout(torch.relu(self.gc1(x, adj)))
        logit = self.gc3(feat, adj)
        return torch.sigmoid(logit).squeeze(1), torch.cat([feat, logit], dim=1)


def gcn_loss(scores: Tensor, labelled: Tensor, weight: float) -> Tensor:
    """The reference's BCEAdjLoss: −mean log s(labelled) − weight · mean log(1 − s(unlabelled))."""
    eps = torch.finfo(scores.dtype).tiny
    return (
        -torch.log(scores[labelled].clamp(min=eps)).mean()
        - weight * torch.log((1 - scores[~labelled]).clamp(min=eps)).mean()
    )


@dataclass
class _SequentialGCN(Sampler):
    needs = frozenset({"embedding"})
    works_without_labelled = False
    #: what the GCN's output is used for
    use: ClassVar[str]

    candidates: int | None = param(
        10_000, low=1
    )  # random unlabelled images scored per cycle (None: the pool)
    hidden: int = param(128, low=1)  # GCN hidden units (hidden_units)
    dropout: float = param(0.3, low=0, high=1, high_open=True)  # GCN dropout (dropout_rate)
    weight: float = param(1.2, low=0)  # λ of the unlabelled term (lambda_loss)
    steps: int = param(200, low=1)  # Adam steps (EPOCH_GCN)
    lr: float = param(1e-3, low=0, low_open=True)  # LR_GCN
    weight_decay: float = param(5e-4, low=0)  # WDECAY

    def _candidates(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        """Positions of the candidates: a seeded random `candidates` of the pool (at least `budget`), or all."""
        n = len(ctx.pool)
        size = n if self.candidates is None else max(self.candidates, budget)
        if size >= n:
            return np.arange(n)
        return np.sort(ctx.rng.choice(n, size=size, replace=False))

    def _train(self, ctx: SelectionContext, cand: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """(scores, node embeddings, input features) of candidates + labelled after training the GCN."""
        if len(ctx.labelled) == 0:
            raise ValueError(
                f"{self.name} trains a labelled-vs-unlabelled classifier and needs labelled images"
            )
        emb = np.concatenate([ctx.collect("pool", "embedding")[cand], ctx.collect("labelled", "embedding")])
        x = torch.nn.functional.normalize(torch.from_numpy(emb).double(), dim=1).float()
        adj = affinity_adjacency(x)
        is_labelled = torch.zeros(len(x), dtype=torch.bool)
        is_labelled[len(cand) :] = True
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.name, ctx.seed, ctx.cycle))
            gcn = GCN(x.shape[1], self.hidden, self.dropout)
            opt = torch.optim.Adam(gcn.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            gcn.train()
            for _ in range(self.steps):
                opt.zero_grad()
                scores, _ = gcn(x, adj)
                gcn_loss(scores, is_labelled, self.weight).backward()
                opt.step()
        gcn.eval()
        with torch.no_grad():
            scores, nodes = gcn(x, adj)
        return scores, nodes, x


@dataclass
class UncertainGCN(_SequentialGCN):
    """Annotate the candidates whose GCN labelled-vs-unlabelled score is closest to the margin."""

    name = "uncertaingcn"
    colour = "#17BECF"
    marker = "2"
    order = 16
    label = "UncertainGCN"
    description = "UncertainGCN: GCN labelled-vs-unlabelled score closest to the margin 0.1 (Caramalau 2021)."

    margin: float = param(0.1, low=0, high=1)  # s_margin

    def select(self, ctx: SelectionContext, budget: int) -> Selection:
        cand = self._candidates(ctx, budget)
        scores, _, _ = self._train(ctx, cand)
        closeness = -torch.abs(scores[: len(cand)] - self.margin).double().numpy()
        order = np.lexsort((np.arange(len(cand)), -closeness))[: min(budget, len(cand))]
        return Selection(cand[order].astype(np.int64), closeness[order])


@dataclass
class CoreGCN(_SequentialGCN):
    """k-center greedy from the labelled images on the GCN node embeddings of the candidates."""

    name = "coregcn"
    colour = "#1F3A93"
    marker = "1"
    order = 15
    label = "CoreGCN"
    description = "CoreGCN: k-center greedy on GCN node embeddings of labelled + unlabelled (Caramalau 2021)."

    # "gcn": the GCN's node embeddings (the paper); "input": the normalised embeddings the reference code's k-center
    # step actually reads (it overwrites the GCN output)
    features: Literal["gcn", "input"] = "gcn"

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        cand = self._candidates(ctx, budget)
        _, nodes, x = self._train(ctx, cand)
        space = (nodes if self.features == "gcn" else x).double()
        picked = kcenter_greedy(space[: len(cand)], space[len(cand) :], budget)
        return cand[picked].astype(np.int64)
