"""Optimizers and learning-rate schedules: AdamW, LAMB (the paper's pretraining optimizer), linear warm-up/decay."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

OPTIMIZERS = ("adamw", "lamb")
SCHEDULES = ("linear", "cosine", "constant")


class Lamb(torch.optim.Optimizer):
    """LAMB: Adam moments with a per-layer trust ratio (You et al., 2020, "Large Batch Optimization for Deep
    Learning: Training BERT in 76 minutes").

    For each parameter tensor ``p``: the Adam direction ``u = m_hat / (sqrt(v_hat) + eps) + weight_decay * p`` is
    scaled by the trust ratio ``||p|| / ||u||`` (1 when either norm is zero), then ``p -= lr * ratio * u``.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator.
        weight_decay: decoupled weight decay, added to the update before the trust ratio.
        bias_correction: divide the moments by ``1 - beta ** step``.
        max_trust_ratio: clamp the trust ratio to this value (``None``: no clamp).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        bias_correction: bool = True,
        max_trust_ratio: float | None = 10.0,
    ) -> None:
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            max_trust_ratio=max_trust_ratio,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("Lamb does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step = float(state["step"])
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if group["bias_correction"]:
                    m_hat = exp_avg / (1 - beta1**step)
                    v_hat = exp_avg_sq / (1 - beta2**step)
                else:
                    m_hat, v_hat = exp_avg, exp_avg_sq
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                weight_norm = p.norm()
                update_norm = update.norm()
                ratio = torch.where(
                    (weight_norm > 0) & (update_norm > 0), weight_norm / update_norm, torch.ones_like(weight_norm)
                )
                if group["max_trust_ratio"] is not None:
                    ratio = ratio.clamp(max=group["max_trust_ratio"])
                p.add_(update * ratio, alpha=-group["lr"])
        return loss


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights with ``weight_decay``, and biases / LayerNorm / embedding-free 1-D tensors without."""
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.dim() < 2 or "LayerNorm" in name or "layernorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    model: nn.Module,
    name: str = "adamw",
    lr: float = 5e-5,
    weight_decay: float = 0.01,
    eps: float = 1e-8,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """AdamW or LAMB over ``model``'s trainable parameters (no decay on biases and LayerNorm weights).

    The defaults of ``eps`` and ``betas`` are Hugging Face's ``TrainingArguments`` (``adam_epsilon``,
    ``adam_beta1``, ``adam_beta2``), for both optimizers.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    if not eps > 0:
        raise ValueError(f"adam_epsilon must be > 0, got {eps}")
    if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
        raise ValueError(f"adam_beta1 and adam_beta2 must lie in [0, 1), got {betas[0]} and {betas[1]}")
    groups = parameter_groups(model, weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=False)
    return Lamb(groups, lr=lr, betas=betas, eps=eps)


def warmup_steps_for(total_steps: int, ratio: float) -> int:
    """Warm-up steps for a fraction ``ratio`` of ``total_steps``, rounded up (as Hugging Face's Trainer does)."""
    return math.ceil(ratio * total_steps)


def build_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, kind: str = "linear"
) -> LambdaLR:
    """Linear warm-up over ``warmup_steps`` (step ``s`` runs at ``s / warmup_steps`` of the base rate, so the first
    step has rate 0, as ``transformers.get_linear_schedule_with_warmup``), then ``kind``: linear decay to 0 at
    ``total_steps``, half-cosine decay to 0, or constant."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    return LambdaLR(optimizer, _ScheduleFactor(total_steps, warmup_steps, kind))


class _ScheduleFactor:
    """The multiplier of the base learning rate at a step (a class, so the scheduler's state pickles)."""

    def __init__(self, total: int, warmup: int, kind: str) -> None:
        self.total, self.warmup, self.kind = total, warmup, kind

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / self.warmup
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))
