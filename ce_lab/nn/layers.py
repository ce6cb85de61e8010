"""Stacked layers: each with its forward and, beside it, its hand-written backward.

Why by hand and not autograd: every loss shares the chain rule from the logits down, and for the
default MLP's batches of 64 on a CPU, autograd's graph bookkeeping, accumulate-grad copies and
torch.optim's per-call wrapper cost as much as the arithmetic itself. The kernels here are the
ones autograd calls (mm/bmm, threshold_backward, sigmoid_backward, tanh_backward), so a NaN travels
as it would through autograd. tests/test_nn.py checks every gradient against float64 autograd.

Why gradient buffers: each parameter's ``.grad`` is set once, to a view of a buffer that every
backward overwrites (``out=``), and the views the products need are taken once
(``StackedLinear.prepare``): per step that saves a Python-level call for each view and an
allocation per tensor. The views stay valid while the parameters keep their storage (the
optimizer and ``load_state_dict`` write in place); moving the module drops them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Activation:
    name: str
    forward: object  # out of place (under autograd)
    forward_: object  # in place: for a layer's fresh output, which nothing else holds
    backward: object  # (grad, output) -> grad of the input, from the activation's output


ACTIVATIONS: dict[str, Activation] = {
    # threshold_backward: a NaN arriving at a zeroed ReLU unit stays zeroed there, as with autograd
    "relu": Activation("relu", torch.relu, torch.relu_,
                       lambda grad, out: torch.ops.aten.threshold_backward(grad, out, 0)),
    "sigmoid": Activation("sigmoid", torch.sigmoid, torch.sigmoid_, torch.ops.aten.sigmoid_backward),
    "tanh": Activation("tanh", torch.tanh, torch.tanh_, torch.ops.aten.tanh_backward),
}


@dataclass
class _Views:
    """A layer's tensors as the products use them, taken once (see the module docstring)."""

    weight: Tensor  # detached: (M, out, in)
    weight_t: Tensor  # the same memory: (in, M*out) [first layer] or (M, in, out)
    bias: Tensor  # (M*out,) [first layer] or (M, 1, out)
    grad_weight: Tensor  # laid out like weight_t; the parameter's .grad is a view of it
    grad_bias: Tensor  # (M*out,) [first layer] or (M, out); the bias's .grad is a view of it
    norm_weight: Tensor  # grad_weight as rows that each belong to one member
    norm_bias: Tensor


class StackedLinear(nn.Module):
    """``members`` independent linear layers: weight (M, out, in), bias (M, out).

    The weight does not lie in memory as nn.Linear's (out, in) but as the products want it, so no
    step copies it:

    - the first layer (``shared_input``: every member sees the same data) as one (in, M*out)
      matrix, ``weight.permute(2, 0, 1)`` contiguous: the forward is one wide GEMM (B, in) @
      (in, M*out) and the weight gradient one (in, B) @ (B, M*out). MKL runs that orientation about
      1.3x faster than nn.Linear's for the default 784-256 layer. Member k's outputs are columns
      k*out:(k+1)*out of that GEMM: the products its lone run computes, and the same bits where the
      BLAS computes a column alike whatever the product's width (oneMKL at the default shapes, not
      at every shape: docs/fusion.md);
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
        self._views: _Views | None = None

    def _apply(self, fn, *args, **kwargs):
        self._views = None  # .to() / .double() give the parameters new storage
        return super()._apply(fn, *args, **kwargs)

    def _product_views(self, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        m, fan_out, fan_in = w.shape
        if self.shared_input:
            return w.permute(2, 0, 1).reshape(fan_in, m * fan_out), b.view(m * fan_out)
        return w.transpose(1, 2), b.unsqueeze(1)

    def prepare(self) -> _Views:
        """The views of the products and the gradient buffers, made once per storage."""
        if self._views is not None:
            return self._views
        w, b = self.weight.detach(), self.bias.detach()  # views that never build a graph
        m, fan_out, fan_in = w.shape
        w_t, b_t = self._product_views(w, b)
        if w_t.data_ptr() != w.data_ptr() or not w_t.is_contiguous():
            raise ValueError("a weight is not laid out as StackedLinear lays it out")
        grad_w = torch.zeros_like(w_t)
        grad_b = torch.zeros_like(b_t if self.shared_input else b)
        if self.shared_input:
            self.weight.grad = grad_w.view(fan_in, m, fan_out).permute(1, 2, 0)
        else:
            self.weight.grad = grad_w.transpose(1, 2)
        self.bias.grad = grad_b.view(m, fan_out)
        # Rows for the squared norms, each belonging to one member: member k's rows are k, k + M,
        # k + 2M, ... of the wide layout; in the others, one row per member.
        if self.shared_input:
            norm_w, norm_b = grad_w.view(-1, fan_out), grad_b.view(m, -1)
        else:
            norm_w, norm_b = grad_w.view(m, -1), grad_b.view(m, -1)
        self._views = _Views(w, w_t, b_t, grad_w, grad_b, norm_w, norm_b)
        return self._views

    def forward(self, x: Tensor) -> Tensor:
        """(B, in) [first layer] or (M, B, in) -> (M, B, out).

        Under autograd (tests, notebooks) the products take views of the parameters themselves;
        otherwise the cached detached views: the same arithmetic either way."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            w_t, b = self._product_views(self.weight, self.bias)
        else:
            v = self.prepare()
            w_t, b = v.weight_t, v.bias
        if self.shared_input:  # x is the same for every member: one wide GEMM
            out = torch.addmm(b, x, w_t)  # (B, M*out)
            return out.view(x.shape[0], self.weight.shape[0], -1).transpose(0, 1)
        return torch.baddbmm(b, x, w_t)

    def backward(self, inputs: Tensor, grad_out: Tensor, input_grad: bool = True) -> Tensor | None:
        """Writes the gradients of weight and bias from d loss / d output (M, B, out) of the
        forward of ``inputs``; returns d loss / d inputs (M, B, in) when ``input_grad``."""
        v = self.prepare()
        if self.shared_input:
            grad = grad_out.transpose(0, 1).reshape(inputs.shape[0], -1)  # (B, M*out): a view if M=1
            torch.mm(inputs.T, grad, out=v.grad_weight)
            torch.sum(grad, 0, out=v.grad_bias)
            return None  # the data needs no gradient
        torch.bmm(inputs.transpose(1, 2), grad_out, out=v.grad_weight)
        torch.sum(grad_out, 1, out=v.grad_bias)
        return torch.bmm(grad_out, v.weight) if input_grad else None

    def squared_grad_norms(self) -> tuple[Tensor, Tensor]:
        """Each member's squared L2 norm of the weight and of the bias gradient: 0-d with one
        member, (M,) otherwise. A NaN or inf anywhere in a gradient makes its norm non-finite."""
        # Row by row, with one member too: torch reduces each row of a norm or a sum within one
        # thread, in an order set by the row's length alone, so the bits depend neither on the
        # thread count (which follows the load: ce_lab.threads) nor on the stack's size (a
        # member's row sums are gathered into one contiguous row, as its lone run's are). A BLAS
        # dot on the flat buffer is ~6 us faster per step at 784x256, but splits its sum across
        # threads: its last bits moved with the count.
        v = self.prepare()
        w, b = v.norm_weight, v.norm_bias
        rows = torch.linalg.vector_norm(w, dim=1).square_()  # reduced along contiguous memory
        if self.shared_input:
            rows = rows.view(-1, b.shape[0]).t().contiguous().sum(1)
        bias = torch.linalg.vector_norm(b, dim=1).square_()
        return (rows.reshape(()), bias.reshape(())) if b.shape[0] == 1 else (rows, bias)
