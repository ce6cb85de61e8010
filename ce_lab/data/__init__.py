"""The data sets (MNIST by default): where their files live, how they are fetched and verified, and
how they load.

Modules, one concern each: ``idx`` (the file format), ``files`` (the cache layout, md5 checks,
atomic writes), ``offline`` (rebuilding MNIST from the PyPI wheel), ``fetch`` (the order in which
sources are tried), ``sets`` (the named sets, their md5s and noise maps), ``settings`` (the
``data`` config section), ``idx_sets`` (Fashion-MNIST's and KMNIST's sources), ``mnist1d`` (the
generated set), ``custom`` (one's own files), ``read`` (a set into CPU tensors), ``noise`` (label
noise), ``loader`` (tensors on the device for training).

The trainer's entry points: ``ce_lab.data.loader.load_mnist`` (any ``data.name``) and
``epoch_batches``. This package file imports nothing, so ``ce-lab --help`` does not pay for numpy.
"""
