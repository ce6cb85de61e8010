"""The standard argument for cross-entropy, one computable step per module.

- ``information``: entropy, cross-entropy, KL divergence and the binary formula (pure Python).
- ``saturation``: |d loss / d logit| of one output unit for MSE-on-sigmoid, BCE/CE and hinge.
- ``stability``: where softmax -> log -> NLL and its relatives turn inf, NaN or wrong.
- ``jsonsafe``: non-finite floats as strings, so ``--format json`` is always valid JSON.
- ``render``: each report as the text and tables the commands print; ``to_dict`` on each
  report is its JSON form.

torch and matplotlib are imported inside the functions that need them, like the loss registry.
"""
