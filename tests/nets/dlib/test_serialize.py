import math
import time
import tracemalloc

import numpy as np
import pytest

from synthcore.nets.dlib.serialize import DlibFormatError, DlibReader
from tests.nets.dlib.conftest import enc_float, enc_int, enc_matrix, enc_string, enc_tensor


def reader(data: bytes) -> DlibReader:
    return DlibReader(data, "test.dat")


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 4736, -1, -28, 2**40 + 3, -(2**63), 2**64 - 1])
def test_integers_round_trip(value):
    r = reader(enc_int(value))
    assert r.read_int() == value
    r.require_end()


def test_integer_layout_matches_dlib_files():
    # Bytes as they occur in dlib_face_recognition_resnet_model_v1.dat: 4736 = 0x1280, -28, and 0 as one byte.
    r = reader(b"\x02\x80\x12\x81\x1c\x01\x00")
    assert [r.read_int(), r.read_int(), r.read_int()] == [4736, -28, 0]


def test_floats_are_mantissa_and_exponent():
    # The ResNet's loss margin as stored: 0xa3d70a * 2**-28 = 0.04 in float32.
    r = reader(b"\x03\x0a\xd7\xa3\x81\x1c" + enc_float(-1.5) + enc_int(0) + enc_int(32000))
    assert r.read_float() == pytest.approx(0.04, abs=1e-8)
    assert r.read_float() == -1.5
    assert r.read_float() == math.inf


def test_strings_bools_tensors_matrices():
    t = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    m = np.array([[0.25, -3.0], [1e-3, 7.5]])
    data = enc_string("con_4") + b"10" + enc_tensor(t) + enc_matrix(m)
    r = reader(data)
    assert r.read_string() == "con_4"
    assert r.read_bool() is True and r.read_bool() is False
    out = r.read_tensor()
    assert out.dtype == np.float32 and out.shape == (2, 3, 2, 2) and np.array_equal(out, t)
    assert np.array_equal(r.read_matrix(), m)
    r.require_end()


def test_errors_name_file_and_offset():
    r = reader(enc_string("con_4") + enc_int(7))
    r.read_string()
    with pytest.raises(DlibFormatError, match=r"test\.dat: unsupported tensor version 7 .*at byte offset 7"):
        r.read_tensor()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x3f\x00", "bad integer control byte"),  # bits 4-6 set
        (b"\x09" + bytes(9), "bad integer control byte"),  # 9 magnitude bytes
        (b"\x04\x01\x02", "truncated"),
        (b"", "truncated"),
    ],
)
def test_bad_integers(data, message):
    with pytest.raises(DlibFormatError, match=message):
        reader(data).read_int()


def test_bad_bool_and_string():
    with pytest.raises(DlibFormatError, match="neither '0' nor '1'"):
        reader(b"x").read_bool()
    with pytest.raises(DlibFormatError, match="out of range"):
        reader(enc_int(1 << 30) + b"abc").read_string()
    with pytest.raises(DlibFormatError, match="not ASCII"):
        reader(enc_int(2) + b"\xff\xfe").read_string()
    with pytest.raises(DlibFormatError, match="bad tag 'relu_'"):
        reader(enc_string("relu_")).expect_string("con_4")


def test_truncated_tensor():
    data = enc_tensor(np.ones((4, 3, 2, 2), np.float32))
    with pytest.raises(DlibFormatError, match="truncated"):
        reader(data[:-1]).read_tensor()


def test_absurd_dimensions_refused_without_allocating():
    huge = enc_int(2) + b"".join(enc_int(d) for d in (1 << 20, 1 << 20, 1 << 20, 1 << 19)) + bytes(64)
    matrix = enc_int(-(1 << 40)) + enc_int(-(1 << 40)) + bytes(64)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(DlibFormatError, match="absurd"):
        reader(huge).read_tensor()
    with pytest.raises(DlibFormatError, match="absurd"):
        reader(matrix).read_matrix()
    with pytest.raises(DlibFormatError, match="absurd"):
        reader(enc_int(1 << 50) + bytes(8)).read_count("trees", 2)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 1 << 20


def test_trailing_bytes_refused():
    r = reader(enc_int(1) + b"\x00")
    r.read_int()
    with pytest.raises(DlibFormatError, match="1 unexpected trailing bytes"):
        r.require_end()


def test_from_file_missing(tmp_path):
    with pytest.raises(DlibFormatError, match="cannot read"):
        DlibReader.from_file(tmp_path / "nope.dat")


def test_int_stream_matches_sequential_reader():
    values = [0, 1, -1, 300, -(2**40), 2**63 - 1, -(2**63), 7, 2**20]
    data = b"".join(enc_int(v) for v in values)
    stream, offsets = reader(data).read_int_stream()
    assert stream.tolist() == values
    assert offsets.tolist() == np.cumsum([0] + [len(enc_int(v)) for v in values[:-1]]).tolist()
    assert reader(data).read_ints(len(values)).tolist() == values


@pytest.mark.parametrize(
    "tail, message",
    [(b"\x35\x01", "bad integer control byte 0x35 .*at byte offset 3"), (b"\x03\x01", "truncated")],
)
def test_int_stream_locates_faults(tail, message):
    data = enc_int(5) + b"\x00" + tail  # two good integers (2 + 1 bytes), then the fault at byte 3
    with pytest.raises(DlibFormatError, match=message):
        reader(data).read_int_stream()


def test_int_stream_refuses_out_of_range():
    with pytest.raises(DlibFormatError, match="64 bits"):
        reader(enc_int(2**63)).read_int_stream()
