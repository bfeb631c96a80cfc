"""Knowledge distillation: train a student on a mix of the task loss and the teacher's softened predictions, as in
the paper's fine-tuning "with bells and whistles" (Iandola et al., 2020, section 5); plus initialising a grouped
student from a dense (``groups=1``) teacher of the same shape."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling.layers import GroupedConv1x1

Tensor = torch.Tensor


def soft_cross_entropy(student_logits: Tensor, teacher_logits: Tensor, temperature: float, mask: Tensor | None = None):
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` over the last axis, averaged over the rows that
    ``mask`` (same leading shape) keeps. The ``T^2`` keeps gradient sizes comparable across temperatures."""
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    p_teacher = F.softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12)) - log_p_student)).sum(-1)
    if mask is not None:
        kl = kl[mask]
    return kl.mean() * temperature**2 if kl.numel() else kl.sum()


class DistillationLoss:
    """``alpha * distillation + (1 - alpha) * task loss`` for a student head and a teacher of the same head type.

    The distillation term depends on the output: a soft cross-entropy on classification / multiple-choice /
    token logits (padding and ignored tokens excluded) and on the QA start and end logits, and the mean squared error
    for regression and for multi-label logits (sigmoid outputs, compared as logits).

    Args:
        teacher: the teacher model (put in eval mode; never updated).
        temperature: softmax temperature (> 0).
        alpha: weight of the distillation term in [0, 1].
        problem_type: the student config's ``problem_type`` (``None`` for the non-sequence heads).
    """

    def __init__(
        self, teacher: nn.Module, temperature: float = 2.0, alpha: float = 0.5, problem_type: str | None = None
    ):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha
        self.problem_type = problem_type

    def __call__(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        student = model(**batch)
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "start_positions", "end_positions")}
        with torch.no_grad():
            teacher = self.teacher(**inputs)
        soft = self.soft_loss(student, teacher, batch)
        if self.alpha >= 1.0 or student.get("loss") is None:
            return soft
        return self.alpha * soft + (1.0 - self.alpha) * student["loss"]

    def soft_loss(self, student: Any, teacher: Any, batch: dict[str, Tensor]) -> Tensor:
        t = self.temperature
        if "start_logits" in student:
            mask = batch.get("attention_mask")
            mask = None if mask is None else mask.bool()
            return (
                soft_cross_entropy(student["start_logits"], teacher["start_logits"], t, mask)
                + soft_cross_entropy(student["end_logits"], teacher["end_logits"], t, mask)
            ) / 2
        s, te = student["logits"], teacher["logits"]
        if self.problem_type in ("regression", "multi_label_classification"):
            return F.mse_loss(s.float(), te.float())
        if s.dim() == 3:  # token classification: the labelled tokens (or every real token without labels)
            labels = batch.get("labels")
            mask = labels.ne(-100) if labels is not None else batch["attention_mask"].bool()
            return soft_cross_entropy(s, te, t, mask)
        return soft_cross_entropy(s, te, t)


@torch.no_grad()
def init_grouped_from_dense(student: nn.Module, dense_state: dict[str, Tensor]) -> list[str]:
    """Copy a checkpoint with fewer groups (typically a dense ``groups=1`` teacher) into a grouped student of the
    same sizes.

    Every tensor whose shape matches is copied; a grouped 1x1 convolution ``[out, in / G, 1]`` takes the ``G``
    diagonal blocks of the source weight seen as a full ``[out, in]`` matrix (the connections a grouped layer
    keeps). Returns the names of the student's parameters that had no counterpart.
    """
    own = student.state_dict()
    convs = {name: m for name, m in student.named_modules() if isinstance(m, GroupedConv1x1)}
    missing = []
    for key, target in own.items():
        source = dense_state.get(key)
        if source is None:
            missing.append(key)
            continue
        if source.shape == target.shape:
            target.copy_(source)
            continue
        module = convs.get(key.rsplit(".", 1)[0])
        shape_ok = (
            module is not None
            and key.endswith(".weight")
            and source.dim() == 3
            and source.shape[0] == module.out_channels
            and module.in_channels % source.shape[1] == 0
        )
        if not shape_ok:
            raise ValueError(
                f"{key}: the source checkpoint has shape {tuple(source.shape)}, the student {tuple(target.shape)}"
            )
        full = _full_matrix(source[..., 0], module.in_channels // source.shape[1])
        g, out_g, in_g = module.groups, module.out_channels // module.groups, module.in_channels // module.groups
        blocks = [full[i * out_g : (i + 1) * out_g, i * in_g : (i + 1) * in_g] for i in range(g)]
        target.copy_(torch.cat(blocks, dim=0).unsqueeze(-1))
    return missing


def _full_matrix(weight: Tensor, groups: int) -> Tensor:
    """A grouped ``[out, in / groups]`` weight as the block-diagonal ``[out, in]`` matrix it stands for."""
    out_channels, in_g = weight.shape
    out_g = out_channels // groups
    full = weight.new_zeros(out_channels, in_g * groups)
    for i in range(groups):
        full[i * out_g : (i + 1) * out_g, i * in_g : (i + 1) * in_g] = weight[i * out_g : (i + 1) * out_g]
    return full
