"""What a dataset is to the model and the losses: its name, inputs per example and classes.

The loader's tensors carry their ``DatasetSpec`` (``MnistTensors.spec``), so the model can be sized
from ``data.spec.n_inputs`` and ``data.spec.n_classes`` instead of hard-wired 784 and 10; the
losses read the number of classes from the logits' last dimension. Torch-free and numpy-free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    n_inputs: int  # features per example, as the model sees them (images flattened)
    n_classes: int  # labels are 0 .. n_classes - 1

    def __post_init__(self) -> None:
        if self.n_inputs < 1 or self.n_classes < 2:
            raise ValueError(f"{self.name}: needs n_inputs >= 1 and n_classes >= 2, "
                             f"not {self.n_inputs} and {self.n_classes}")


MNIST = DatasetSpec("mnist", n_inputs=28 * 28, n_classes=10)
