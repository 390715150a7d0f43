"""Optimiser pieces that work with sparse embedding gradients and across workers.

The hashed n-gram encoder is a large ``EmbeddingBag`` of which one batch touches a few thousand rows.
Training it with dense gradients would update every row each step (0.4 s per step at 2^18 x 256 on 2
cores), so embedding tables train with sparse gradients and ``SparseAdam``; every other trainable
tensor uses AdamW.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import distributed as dist
from torch import nn


def use_sparse_embeddings(module: nn.Module) -> list[nn.Parameter]:
    """Switch trainable embedding tables to sparse gradients; returns their weights."""
    out: list[nn.Parameter] = []
    for m in module.modules():
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.weight.requires_grad:
            m.sparse = True
            out.append(cast(nn.Parameter, m.weight))
    return out


class Optimizers:
    """AdamW for dense parameters plus SparseAdam for sparse embedding tables, stepped together."""

    def __init__(self, module: nn.Module, *, lr: float, weight_decay: float) -> None:
        sparse = use_sparse_embeddings(module)
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in module.parameters() if p.requires_grad and id(p) not in sparse_ids]
        self.params: list[nn.Parameter] = [*dense, *sparse]
        self.opts: dict[str, torch.optim.Optimizer] = {}
        if dense:
            self.opts["dense"] = torch.optim.AdamW(dense, lr=lr, weight_decay=weight_decay)
        if sparse:
            self.opts["sparse"] = torch.optim.SparseAdam(sparse, lr=lr)

    def set_lr(self, lr: float) -> None:
        for opt in self.opts.values():
            for group in opt.param_groups:
                group["lr"] = lr

    def zero_grad(self) -> None:
        for opt in self.opts.values():
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        for opt in self.opts.values():
            opt.step()

    def state_dict(self) -> dict[str, object]:
        return {name: opt.state_dict() for name, opt in self.opts.items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for name, opt in self.opts.items():
            opt.load_state_dict(state[name])


def clip_gradients(params: Sequence[nn.Parameter], max_norm: float) -> float:
    """Scale all gradients (dense and sparse) so their joint L2 norm is at most ``max_norm``; returns the norm."""
    norms = []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            norms.append(p.grad._values().norm())
        else:
            norms.append(p.grad.norm())
    if not norms:
        return 0.0
    total = torch.linalg.vector_norm(torch.stack(norms))
    if max_norm > 0 and float(total) > max_norm:
        scale = max_norm / (float(total) + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
    return float(total)


def distributed_world() -> int:
    """Number of processes in the default torch.distributed group (1 when there is none)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_gradients(params: Sequence[nn.Parameter]) -> None:
    """Average gradients over all workers (dense: all-reduce; sparse: gather rows, then sum)."""
    world = distributed_world()
    if world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)  # an unused parameter still takes part in the collective
        if p.grad.is_sparse:
            p.grad = _gather_sparse(p.grad.coalesce(), world)
        else:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def _gather_sparse(grad: torch.Tensor, world: int) -> torch.Tensor:
    idx, val = grad._indices(), grad._values()
    n = torch.tensor([idx.shape[1]], device=val.device)
    counts = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    top = int(max(int(c) for c in counts))
    pad_idx = torch.zeros((idx.shape[0], top), dtype=idx.dtype, device=idx.device)
    pad_val = torch.zeros((top, *val.shape[1:]), dtype=val.dtype, device=val.device)
    pad_idx[:, : idx.shape[1]] = idx
    pad_val[: val.shape[0]] = val
    all_idx = [torch.empty_like(pad_idx) for _ in range(world)]
    all_val = [torch.empty_like(pad_val) for _ in range(world)]
    dist.all_gather(all_idx, pad_idx)
    dist.all_gather(all_val, pad_val)
    parts_i = [a[:, : int(c)] for a, c in zip(all_idx, counts, strict=True)]
    parts_v = [a[: int(c)] for a, c in zip(all_val, counts, strict=True)]
    out = torch.sparse_coo_tensor(torch.cat(parts_i, 1), torch.cat(parts_v, 0) / world, grad.shape)
    return out.coalesce()


def broadcast_parameters(module: nn.Module) -> None:
    """Make every worker start from rank 0's trainable weights."""
    if distributed_world() == 1:
        return
    for p in module.parameters():
        if p.requires_grad:
            dist.broadcast(p.data, src=0)
