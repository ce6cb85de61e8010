"""The MLP, stacked: M independent members of one shape evaluated with batched matrix products.

A single run is the case M = 1, so a lone run and a fused comparison run the same code. Initial
weights depend on the seed and the architecture only, never on the loss: every member starts from
the same weights, which is what makes a comparison across losses paired.

Training differentiates the layers by hand (``ce_lab.backprop``); this module knows the shapes,
the memory layout, the initialisation and the forward pass used for evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


class StackedLinear(nn.Module):
    """``members`` independent linear layers: weight (M, out, in), bias (M, out).

    The weight does not lie in memory as nn.Linear's (out, in) but as the products want it, so no
    step copies it:

    - the first layer (``shared_input``: every member sees the same data) as one (in, M*out)
      matrix, ``weight.permute(2, 0, 1)`` contiguous: the forward is one wide GEMM (B, in) @
      (in, M*out) and the weight gradient one (in, B) @ (B, M*out). MKL runs that orientation about
      1.3x faster than nn.Linear's for the default 784-256 layer, and the arithmetic each member
      gets does not depend on how many members there are: fused members train bit for bit as they
      would alone;
    - the other layers as (M, in, out), ``weight.transpose(1, 2)`` contiguous, for batched GEMMs.
    """

    def __init__(self, members: int, fan_in: int, fan_out: int, shared_input: bool = False):
        super().__init__()
        self.shared_input = shared_input
        if shared_input:
            weight = torch.empty(fan_in, members, fan_out).permute(1, 2, 0)
        else:
            weight = torch.empty(members, fan_in, fan_out).transpose(1, 2)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.empty(members, fan_out))

    def forward(self, x: Tensor) -> Tensor:
        m, fan_out, fan_in = self.weight.shape
        if self.shared_input:  # x: (B, in), the same for every member
            w = self.weight.permute(2, 0, 1).reshape(fan_in, m * fan_out)  # a view (see above)
            y = torch.addmm(self.bias.view(m * fan_out), x, w)
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
        for i, (name, fan_in, fan_out) in enumerate(zip(self.layer_names, sizes[:-1], sizes[1:])):
            self.add_module(name, StackedLinear(members, fan_in, fan_out, shared_input=i == 0))

    def layers(self) -> list[StackedLinear]:
        return [getattr(self, n) for n in self.layer_names]

    def forward(self, x: Tensor) -> Tensor:
        act = ACTIVATIONS[self.activation]
        layers = self.layers()
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
