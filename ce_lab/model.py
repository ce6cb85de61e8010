"""The MLP, stacked: M independent members of one shape evaluated with batched matrix products.

A single run is the case M = 1, so a lone run and a fused comparison run the same code. Initial
weights depend on the seed and the architecture only, never on the loss: every member starts from
the same weights, which is what makes a comparison across losses paired.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


class StackedLinear(nn.Module):
    """``members`` independent linear layers: weight (M, out, in), bias (M, out)."""

    def __init__(self, members: int, fan_in: int, fan_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, fan_out, fan_in))
        self.bias = nn.Parameter(torch.empty(members, fan_out))

    def forward(self, x: Tensor) -> Tensor:
        m, fan_out, fan_in = self.weight.shape
        if x.dim() == 2:
            # Input shared by every member (the first layer): one wide GEMM (B, in) @ (in, M*out)
            # is much faster than M small ones, forwards and backwards.
            y = torch.addmm(self.bias.reshape(m * fan_out), x,
                            self.weight.reshape(m * fan_out, fan_in).T)
            return y.view(x.shape[0], m, fan_out).transpose(0, 1)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class StackedMLP(nn.Module):
    """Maps a batch (B, 784) to logits (M, B, 10), one slice per member."""

    def __init__(self, members: int, sizes: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.members = members
        self.sizes = tuple(sizes)
        self.activation = activation
        self.layer_names = [f"fc{i}" for i in range(1, len(sizes))]
        for name, fan_in, fan_out in zip(self.layer_names, sizes[:-1], sizes[1:]):
            self.add_module(name, StackedLinear(members, fan_in, fan_out))

    def forward(self, x: Tensor) -> Tensor:
        act = ACTIVATIONS[self.activation]
        layers = [getattr(self, n) for n in self.layer_names]
        for layer in layers[:-1]:
            x = act(layer(x))
        return layers[-1](x)


def layer_sizes(hidden: Sequence[int], n_in: int = 784, n_out: int = 10) -> list[int]:
    return [n_in, *hidden, n_out]


@torch.no_grad()
def init_weights(model: StackedMLP, scheme: str, seed: int) -> None:
    """Draw one member's weights from a CPU generator seeded by ``seed``; copy them to every member.

    Drawing on the CPU makes the initial weights identical on every device.
    """
    gen = torch.Generator().manual_seed(seed)
    for name in model.layer_names:
        layer: StackedLinear = getattr(model, name)
        fan_out, fan_in = layer.weight.shape[1:]
        w = torch.empty(fan_out, fan_in)
        b = torch.empty(fan_out)
        if scheme == "default":  # what nn.Linear does: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1 / math.sqrt(fan_in)
            w.uniform_(-bound, bound, generator=gen)
            b.uniform_(-bound, bound, generator=gen)
        elif scheme == "kaiming":
            w.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
            b.zero_()
        elif scheme == "xavier":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            w.uniform_(-bound, bound, generator=gen)
            b.zero_()
        else:
            raise ValueError(f"unknown init scheme {scheme!r}")
        layer.weight.copy_(w.expand_as(layer.weight))
        layer.bias.copy_(b.expand_as(layer.bias))


def build_model(members: int, hidden: Sequence[int], activation: str, init: str, seed: int,
                device: torch.device | str = "cpu") -> StackedMLP:
    model = StackedMLP(members, layer_sizes(hidden), activation)
    init_weights(model, init, seed)
    return model.to(device)


def param_names(model: StackedMLP) -> list[str]:
    """Parameter tensor names in model order: fc1.weight, fc1.bias, ..., fcK.bias."""
    return [n for n, _ in model.named_parameters()]
