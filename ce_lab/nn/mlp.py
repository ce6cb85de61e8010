"""The MLP, stacked: M independent members of one shape evaluated with batched matrix products.

A single run is the case M = 1, so a lone run and a fused stack run the same code. Initial weights
depend on the seed and the architecture only, never on the loss or the optimizer: every member
starts from the same weights, which is what makes a comparison paired.

Evaluation and training use the same ``forward``; training keeps what ``backward`` needs
(``keep=True``) and differentiates the layers by hand (``ce_lab.nn.layers``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ce_lab.data.spec import MNIST
from ce_lab.nn.layers import ACTIVATIONS, StackedLinear


class StackedMLP(nn.Module):
    """Maps a batch (B, n_inputs) to logits (M, B, n_classes), one slice per member."""

    def __init__(self, members: int, sizes: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.members = members
        self.sizes = tuple(sizes)
        self.activation = ACTIVATIONS[activation]
        self.layer_names = [f"fc{i}" for i in range(1, len(sizes))]
        for i, (name, fan_in, fan_out) in enumerate(zip(self.layer_names, sizes[:-1], sizes[1:])):
            self.add_module(name, StackedLinear(members, fan_in, fan_out, shared_input=i == 0))
        self._inputs: list[Tensor] = []  # each layer's input in the last forward(keep=True)

    def layers(self) -> list[StackedLinear]:
        return [getattr(self, n) for n in self.layer_names]

    def forward(self, x: Tensor, keep: bool = False) -> Tensor:
        """Logits (M, B, C) of ``x`` (B, in); with ``keep``, what ``backward`` needs is kept."""
        first, *rest = self.layers()
        act = self.activation.forward if torch.is_grad_enabled() else self.activation.forward_
        out = first(x)
        inputs = [x]
        for layer in rest:
            out = act(out)
            inputs.append(out)
            out = layer(out)
        self._inputs = inputs if keep else []
        return out

    def backward(self, grad_logits: Tensor) -> None:
        """Every parameter's ``.grad`` from d loss / d logits (M, B, C) of the last
        ``forward(keep=True)``; the gradients overwrite the buffers, they do not accumulate."""
        if not self._inputs:
            raise RuntimeError("backward needs a forward(keep=True) first")
        grad = grad_logits
        layers = self.layers()
        for i in range(len(layers) - 1, 0, -1):
            grad = layers[i].backward(self._inputs[i], grad)
            grad = self.activation.backward(grad, self._inputs[i])
        layers[0].backward(self._inputs[0], grad, input_grad=False)

    def squared_grad_norms(self) -> list[Tensor]:
        """Squared L2 norms of the gradients of the last ``backward``, in parameter order
        (fc1.weight, fc1.bias, fc2.weight, ...): 0-d with one member, (M,) otherwise."""
        return [n for layer in self.layers() for n in layer.squared_grad_norms()]


def layer_sizes(hidden: Sequence[int], n_inputs: int = MNIST.n_inputs,
                n_classes: int = MNIST.n_classes) -> list[int]:
    return [n_inputs, *hidden, n_classes]


@torch.no_grad()
def init_weights(model: StackedMLP, scheme: str, seed: int) -> None:
    """Draw one member's weights from a CPU generator seeded by ``seed``; copy them to every member.

    Drawing on the CPU makes the initial weights identical on every device.
    """
    gen = torch.Generator().manual_seed(seed)
    for layer in model.layers():
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


@torch.no_grad()
def scale_init(model: StackedMLP, init_gain: float = 1.0, output_gain: float = 1.0) -> None:
    """Multiply every layer's initial weights and biases by ``init_gain`` and the last layer's once
    more by ``output_gain`` (``model.init_gain``, ``model.output_gain``). A gain of exactly 1 is
    not multiplied at all, so the default leaves the weights bit for bit as drawn; every member
    gets the same factor, so the members still start equal."""
    layers = model.layers()
    for i, layer in enumerate(layers):
        gain = init_gain * (output_gain if i == len(layers) - 1 else 1.0)
        if gain != 1.0:
            layer.weight.mul_(gain)
            layer.bias.mul_(gain)


def build_model(members: int, hidden: Sequence[int], activation: str, init: str, seed: int,
                device: torch.device | str = "cpu", n_inputs: int = MNIST.n_inputs,
                n_classes: int = MNIST.n_classes, init_gain: float = 1.0,
                output_gain: float = 1.0) -> StackedMLP:
    """A stack of ``members`` MLPs sized for a data set (``ce_lab.data.spec``; MNIST's by default),
    every member with the same initial weights (scaled by the gains, ``scale_init``)."""
    model = StackedMLP(members, layer_sizes(hidden, n_inputs, n_classes), activation)
    init_weights(model, init, seed)
    scale_init(model, init_gain, output_gain)
    return model.to(device)


def param_names(model: StackedMLP) -> list[str]:
    """Parameter tensor names in model order: fc1.weight, fc1.bias, ..., fcK.bias."""
    return [n for n, _ in model.named_parameters()]


def parameter_count(sizes: Sequence[int]) -> int:
    """Parameters of one member (weights and biases of every layer)."""
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
