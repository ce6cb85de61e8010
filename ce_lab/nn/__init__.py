"""The stacked MLP: M independent members of one shape, each layer's forward beside its backward."""
