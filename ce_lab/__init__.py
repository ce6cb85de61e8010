"""ce-lab: what changes when the same network is trained with a different classification loss."""

__version__ = "0.1.0"
