"""A training step's arithmetic for a StackedMLP, by hand: the forward pass keeping what the
backward needs, and the backward from d loss / d logits into gradient buffers allocated once.

Why not autograd through the layers: every loss shares the chain rule from the logits down, and for
the default MLP's batches of 64 on a CPU, autograd's graph bookkeeping, accumulate-grad copies and
torch.optim's per-call wrapper cost as much as the arithmetic itself. Autograd still computes
d loss / d logits for every loss without a closed form (``ce_lab.train``). The kernels here are the
ones autograd calls (bmm, threshold_backward, sigmoid_backward, tanh_backward), so a NaN travels as
it would through autograd. tests/test_backprop.py checks every gradient against float64 autograd.

Why buffers: each parameter's ``.grad`` is set once, to a view of a buffer that every ``backward``
overwrites (``out=``), and the views the products need are taken once: per step that saves a
Python-level call for each view, a 0.8 MB allocation and four ``.grad`` assignments. They stay
valid while the parameters keep their storage: the
optimizer and ``load_state_dict`` write in place; build a new Backprop after moving the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ce_lab.model import StackedMLP

# In place: each applies to a layer's fresh output, which nothing else holds.
ACTIVATIONS_IN_PLACE = {"relu": torch.relu_, "sigmoid": torch.sigmoid_, "tanh": torch.tanh_}
# d act / d input from the activation's output, as autograd computes it (a NaN arriving at a
# zeroed ReLU unit stays zeroed there, as with autograd).
ACTIVATION_BACKWARDS = {
    "relu": lambda grad, out: torch.ops.aten.threshold_backward(grad, out, 0),
    "sigmoid": torch.ops.aten.sigmoid_backward,
    "tanh": torch.ops.aten.tanh_backward,
}


@dataclass
class _Layer:
    shared_input: bool  # the first layer: one wide GEMM over the data (see StackedLinear)
    weight: Tensor  # the parameter's data, (M, out, in)
    weight_t: Tensor  # the same memory as the products use it: (in, M*out) or (M, in, out)
    bias: Tensor  # the bias as (M*out,) or (M, 1, out)
    grad_weight: Tensor  # buffer laid out like weight_t; the parameter's .grad is a view of it
    grad_bias: Tensor  # buffer (M*out,) [first layer] or (M, out); the bias's .grad views it
    norm_views: tuple[Tensor, Tensor] = field(init=False)

    def __post_init__(self):
        # Views for the squared norms, taken once: flat with one member; otherwise rows that each
        # belong to one member, member m's rows being m, m + M, m + 2M, ... of the wide layout.
        members, fan_out = self.weight.shape[:2]
        if members == 1:
            self.norm_views = (self.grad_weight.view(-1), self.grad_bias.view(-1))
        elif self.shared_input:
            self.norm_views = (self.grad_weight.view(-1, fan_out), self.grad_bias.view(members, -1))
        else:
            self.norm_views = (self.grad_weight.view(members, -1), self.grad_bias.view(members, -1))

    def squared_grad_norms(self) -> tuple[Tensor, Tensor]:
        """Each member's squared L2 norm of the weight and of the bias gradient: 0-d with one
        member, (M,) otherwise."""
        w, b = self.norm_views
        if w.dim() == 1:
            # BLAS dot on the contiguous buffer: three times faster than a norm kernel on a CPU.
            return torch.dot(w, w), torch.dot(b, b)
        rows = torch.linalg.vector_norm(w, dim=1).square_()  # reduced along contiguous memory
        if self.shared_input:
            rows = rows.view(-1, b.shape[0]).sum(0)
        return rows, torch.linalg.vector_norm(b, dim=1).square_()


class Backprop:
    def __init__(self, model: StackedMLP):
        self.activation = ACTIVATIONS_IN_PLACE[model.activation]
        self.activation_backward = ACTIVATION_BACKWARDS[model.activation]
        self.layers: list[_Layer] = []
        for layer in model.layers():
            # Detached views share the parameters' storage but never build an autograd graph,
            # so the step needs no torch.no_grad() around it.
            w, b = layer.weight.detach(), layer.bias.detach()
            m, fan_out, fan_in = w.shape
            if layer.shared_input:
                w_t, b_t = w.permute(2, 0, 1).reshape(fan_in, m * fan_out), b.view(m * fan_out)
            else:
                w_t, b_t = w.transpose(1, 2), b.unsqueeze(1)
            if w_t.data_ptr() != w.data_ptr() or not w_t.is_contiguous():
                raise ValueError("a weight is not laid out as StackedLinear lays it out")
            grad_w = torch.zeros_like(w_t)
            grad_b = torch.zeros_like(b_t if layer.shared_input else b)
            if layer.shared_input:
                layer.weight.grad = grad_w.view(fan_in, m, fan_out).permute(1, 2, 0)
            else:
                layer.weight.grad = grad_w.transpose(1, 2)
            layer.bias.grad = grad_b.view(m, fan_out)
            self.layers.append(_Layer(layer.shared_input, w, w_t, b_t, grad_w, grad_b))
        self._x: Tensor | None = None
        self._hidden: list[Tensor] = []  # each later layer's input in the last forward

    def forward(self, x: Tensor) -> Tensor:
        """Logits (M, B, C) of the batch ``x`` (B, in); what ``backward`` needs is kept."""
        first, *rest = self.layers
        m = first.weight.shape[0]
        out = torch.addmm(first.bias, x, first.weight_t)  # (B, M*out)
        out = out.view(x.shape[0], m, -1).transpose(0, 1)
        self._x, self._hidden = x, []
        for layer in rest:
            out = self.activation(out)
            self._hidden.append(out)
            out = torch.baddbmm(layer.bias, out, layer.weight_t)
        return out

    def backward(self, grad_logits: Tensor) -> None:
        """Every parameter's ``.grad`` from d loss / d logits (M, B, C) of the last ``forward``."""
        grad = grad_logits
        for layer, inputs in zip(reversed(self.layers[1:]), reversed(self._hidden)):
            torch.bmm(inputs.transpose(1, 2), grad, out=layer.grad_weight)
            torch.sum(grad, 1, out=layer.grad_bias)
            grad = self.activation_backward(torch.bmm(grad, layer.weight), inputs)
        first, x = self.layers[0], self._x
        grad = grad.transpose(0, 1).reshape(x.shape[0], -1)  # (B, M*out): a view when M = 1
        torch.mm(x.T, grad, out=first.grad_weight)
        torch.sum(grad, 0, out=first.grad_bias)

    def squared_grad_norms(self) -> list[Tensor]:
        """Squared L2 norms of the gradients of the last ``backward``, in parameter order
        (fc1.weight, fc1.bias, fc2.weight, ...): 0-d with one member, (M,) otherwise. A NaN or inf
        anywhere in a gradient makes its norm non-finite."""
        return [n for layer in self.layers for n in layer.squared_grad_norms()]
