"""Divergence detection without a host-device sync on every step.

Every step, each member's loss, the norm of its d loss / d logits and the squared L2 norm of each of
its gradient tensors (a NaN or inf anywhere in a tensor makes its norm non-finite) go into a small
ring buffer on the device: one copy. The loop reads the buffer back only on steps that sync anyway
(logged, evaluated, checkpointed or interrupted ones), and at least every ``capacity`` steps, and
learns for every member the first step and quantity that went non-finite. The quantities are given
in the order the step computes them (loss, d loss / d logits, then the layers from the output
down), so on one step the first non-finite one is where the NaN or inf was born, not the first in
the CSV's column order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

MAX_CAPACITY = 256  # rows kept on the device; a read-back is forced at least this often


class DivergenceWatch:
    def __init__(self, members: int, quantities: Sequence[str], capacity: int,
                 device: torch.device | str, start_step: int = 0):
        self.members = members
        self.quantities = list(quantities)
        self.capacity = max(1, min(capacity, MAX_CAPACITY))
        self.buffer = torch.zeros(self.capacity, members * len(self.quantities), device=device)
        self._rows = list(self.buffer.unbind(0))  # views taken once: indexing costs a call a step
        self._tables = [row.view(members, len(self.quantities)) for row in self._rows]
        self.read_through = start_step  # every step up to this one has been read back

    def record(self, step: int, losses: Sequence[Tensor], grad_sq_norms: Sequence[Tensor]) -> Tensor:
        """Store ``step``'s losses (one scalar per member) and squared gradient norms (one tensor
        per quantity after the loss: 0-d with one member, (M,) otherwise); returns the (members,
        quantities) row, a view of the buffer valid until ``capacity`` steps later."""
        slot = step % self.capacity
        if self.members == 1:
            torch.stack([*losses, *grad_sq_norms], out=self._rows[slot])
        else:
            columns = [torch.stack(list(losses)), *grad_sq_norms]
            torch.stack(columns, dim=1, out=self._tables[slot])
        return self._tables[slot]

    def must_read(self, step: int) -> bool:
        """True when one more step would overwrite a row not yet read back."""
        return step - self.read_through >= self.capacity

    def values(self, step: int, member: int) -> list[float]:
        """What was recorded for ``member`` at ``step``, one float per quantity (a sync point).
        Valid for steps not yet overwritten: those of the last ``read`` until the next record."""
        if not 0 < self.read_through - step + 1 <= self.capacity:
            raise ValueError(f"step {step} is no longer in the divergence watch")
        return self._tables[step % self.capacity][member].cpu().double().tolist()

    def read(self, step: int) -> list[tuple[int, str] | None]:
        """For each member, (first step, quantity) that went non-finite among the steps recorded
        since the last read, or None. A sync point; on one step, the first quantity in the order given
        wins (the loss, then the gradients in the order the step computes them)."""
        first = self.read_through + 1
        self.read_through = step
        if step < first:
            return [None] * self.members
        slots = [s % self.capacity for s in range(first, step + 1)]
        bad = ~torch.isfinite(self.buffer[slots])  # (steps, members * quantities)
        if not bool(bad.any()):
            return [None] * self.members
        bad = bad.cpu().view(len(slots), self.members, len(self.quantities))
        found: list[tuple[int, str] | None] = []
        for m in range(self.members):
            hits = bad[:, m, :].nonzero()  # row-major: earliest step, then first quantity
            if len(hits) == 0:
                found.append(None)
            else:
                i, q = hits[0].tolist()
                found.append((first + i, self.quantities[q]))
        return found
