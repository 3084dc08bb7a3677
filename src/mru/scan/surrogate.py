"""Surrogate-gradient step functions of the BMRU (DESIGN §2).

Forward passes are exact; backward passes use the arctan surrogate with slope ``gamma``:

    H(u)    = 1 if u >= 0 else 0,   H'(u)    ~= gamma / (1 + (pi * gamma * u)^2)
    sign(u) = 2 H(u) - 1,           sign'(u) ~= 2 gamma / (1 + (pi * gamma * u)^2)

Note ``sign(0) = +1`` (unlike ``torch.sign``), because H(0) = 1.
"""

from __future__ import annotations

import math

import torch

__all__ = ["heaviside", "binary_sign", "heaviside_grad", "sign_grad"]


def heaviside_grad(u: torch.Tensor, gamma: float) -> torch.Tensor:
    """Surrogate derivative H'(u) = gamma / (1 + (pi gamma u)^2)."""
    return gamma / (1.0 + (math.pi * gamma * u) ** 2)


def sign_grad(u: torch.Tensor, gamma: float) -> torch.Tensor:
    """Surrogate derivative sign'(u) = 2 gamma / (1 + (pi gamma u)^2)."""
    return 2.0 * heaviside_grad(u, gamma)


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, gamma):
        ctx.save_for_backward(u)
        ctx.gamma = gamma
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * heaviside_grad(u, ctx.gamma), None


class _BinarySign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, gamma):
        ctx.save_for_backward(u)
        ctx.gamma = gamma
        return torch.where(u >= 0, 1.0, -1.0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * sign_grad(u, ctx.gamma), None


def heaviside(u: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Heaviside step H(u) (H(0) = 1) with the arctan surrogate gradient of slope ``gamma``."""
    return _Heaviside.apply(u, float(gamma))


def binary_sign(u: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """sign(u) in {-1, +1} (sign(0) = +1) with the arctan surrogate gradient of slope ``gamma``."""
    return _BinarySign.apply(u, float(gamma))
