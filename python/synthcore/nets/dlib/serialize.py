"""A reader of dlib's binary serialisation that interprets bytes and never executes anything from the file.

dlib writes its model files (``.dat``) with its own serialisation, not pickle. Item encodings, as observed in
the files (``../shared/testdata/realmodels/README.md``):

* integer: one control byte (bit 7: negative; bits 0-3: number of magnitude bytes, 0-8) followed by the
  magnitude, little-endian. Bits 4-6 are always zero.
* float (``read_float``): two integers, a 64-bit mantissa and a 16-bit exponent; value = mantissa * 2**exponent.
  Three reserved exponents stand for +inf, -inf and NaN.
* string: an integer length, then that many bytes.
* bool: one ASCII byte, ``'0'`` or ``'1'``.
* tensor (``read_tensor``): version integer 2, four dimensions (n, k, rows, cols), then n*k*rows*cols raw
  little-endian float32 values.
* matrix (``read_matrix``, e.g. the shape predictor's vectors): rows and columns as negated integers, then the
  elements row-major as floats.

Bounds: every length and dimension is checked against the bytes that remain before anything is allocated, so a
truncated file, absurd dimensions or a wrong tag raise ``DlibFormatError`` (a ``ValueError``) naming the file and
the byte offset; what a hostile file can make the reader allocate is proportional to the file's own size.

API (``DlibReader``; ``offset`` = next unread byte, ``remaining``, ``size``, ``error(message)`` builds the error):

* scalars: ``read_int``, ``read_uint(maximum=)``, ``expect_int``, ``read_float``, ``read_bool``,
  ``read_string``, ``expect_string``, ``read_bytes``;
* containers: ``read_count(what, min_bytes_each)`` (a length that must fit in what remains), ``read_tensor``,
  ``read_matrix``;
* bulk: ``read_ints(n)`` / ``read_floats(n)`` (numpy arrays), ``read_int_stream()`` (every remaining byte as
  integers, with each one's byte offset), ``floats_from_pairs`` (mantissa/exponent integer pairs to float64);
* ``require_end()`` refuses trailing bytes.

Usage::

    r = DlibReader.from_file(path)
    r.expect_int(1, "version")
    name = r.read_string()
    weights = r.read_tensor()       # np.ndarray float32 [n, k, rows, cols]
    r.require_end()
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Tuple, Union

import numpy as np

__all__ = ["MAX_FILE_BYTES", "DlibFormatError", "DlibReader"]

# dlib's model files are tens of MB; a file far larger than any model is refused before it is read.
MAX_FILE_BYTES = 1 << 31

# Reserved exponents of a serialised float (the mantissa is then unused).
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


# One serialised integer: a valid control byte (magnitude length n = 0..8, either sign) and its n bytes.
_INT_TOKEN = re.compile(
    "|".join(f"[\\x{n:02x}\\x{n | 0x80:02x}].{{{n}}}" for n in range(9)).encode("latin-1"), re.DOTALL
)


class DlibFormatError(ValueError):
    """A dlib ``.dat`` file does not hold what the reader expects (bad tag, truncation, absurd dimensions)."""


class DlibReader:
    """Sequential reader over the bytes of one dlib file. ``offset`` is the position of the next unread byte."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self._raw = bytes(data)  # no copy when given bytes; indexing bytes is the fast path of the int loop
        self.source = source
        self.offset = 0

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> DlibReader:
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise DlibFormatError(f"{path}: cannot read dlib model file ({exc.strerror or exc})") from None
        if size > MAX_FILE_BYTES:
            raise DlibFormatError(f"{path}: {size} bytes is larger than any dlib model ({MAX_FILE_BYTES} at most)")
        return cls(path.read_bytes(), str(path))

    # -- errors and bounds ---------------------------------------------------------------------------------

    def error(self, message: str, offset: int | None = None) -> DlibFormatError:
        """A ``DlibFormatError`` naming the file and the byte offset (default: the current position)."""
        at = self.offset if offset is None else offset
        return DlibFormatError(f"{self.source}: {message} (at byte offset {at})")

    @property
    def size(self) -> int:
        """Length of the whole input in bytes."""
        return len(self._raw)

    @property
    def remaining(self) -> int:
        return len(self._raw) - self.offset

    def _need(self, count: int, what: str, offset: int | None = None) -> None:
        if count > self.remaining:
            raise self.error(f"truncated: {what} needs {count} bytes but {self.remaining} remain", offset)

    # -- scalars -------------------------------------------------------------------------------------------

    def read_int(self, what: str = "integer") -> int:
        """One integer (any sign, up to 64 bits of magnitude)."""
        raw, pos = self._raw, self.offset
        if pos >= len(raw):
            raise self.error(f"truncated: {what} missing")
        control = raw[pos]
        count = control & 0x0F
        if control & 0x70 or count > 8:
            raise self.error(f"bad integer control byte 0x{control:02x} for {what}")
        end = pos + 1 + count
        if end > len(raw):
            raise self.error(f"truncated: {what} needs {count} bytes but {len(raw) - pos - 1} remain")
        value = int.from_bytes(raw[pos + 1 : end], "little")
        self.offset = end
        return -value if control & 0x80 else value

    def read_uint(self, what: str = "integer", maximum: int | None = None) -> int:
        """A non-negative integer, at most ``maximum`` when given."""
        start = self.offset
        value = self.read_int(what)
        if value < 0 or (maximum is not None and value > maximum):
            bound = f"0..{maximum}" if maximum is not None else ">= 0"
            raise self.error(f"{what} = {value} is out of range ({bound})", start)
        return value

    def expect_int(self, expected: int, what: str) -> None:
        """Read an integer that must equal ``expected`` (a version number or a fixed field)."""
        start = self.offset
        value = self.read_int(what)
        if value != expected:
            raise self.error(f"unsupported {what} {value} (expected {expected})", start)

    def read_float(self, what: str = "float") -> float:
        """One float written as (mantissa, exponent)."""
        start = self.offset
        mantissa = self.read_int(what)
        exponent = self.read_int(what)
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        if not -32768 <= exponent <= 32767 or not -(1 << 63) <= mantissa < (1 << 63):
            raise self.error(f"{what}: mantissa/exponent out of range", start)
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise self.error(f"{what}: value {mantissa}*2^{exponent} overflows", start) from None

    def read_ints(self, count: int, what: str = "integers") -> np.ndarray:
        """``count`` consecutive integers as int64 (the bulk path: shape predictors hold millions of them)."""
        self._need(count, f"{count} {what}")  # every integer takes at least one byte
        raw, pos, size = self._raw, self.offset, len(self._raw)
        out = [0] * count
        from_bytes = int.from_bytes
        for i in range(count):
            if pos >= size:
                raise self.error(f"truncated: {what} end after {i} of {count}", pos)
            control = raw[pos]
            n = control & 0x0F
            if control & 0x70 or n > 8:
                raise self.error(f"bad integer control byte 0x{control:02x} in {what}", pos)
            end = pos + 1 + n
            value = from_bytes(raw[pos + 1 : end], "little")
            out[i] = -value if control & 0x80 else value
            pos = end
        if pos > size:
            raise self.error(f"truncated: the last of {count} {what} runs past the end of the file", size)
        try:
            result = np.array(out, dtype=np.int64)
        except OverflowError:
            raise self.error(f"{what}: a value does not fit in 64 bits") from None
        self.offset = pos
        return result

    def read_int_stream(self, what: str = "integers") -> Tuple[np.ndarray, np.ndarray]:
        """Every remaining byte decoded as consecutive integers: (values int64, byte offset of each), for files
        that hold only integers and floats (shape predictors). The tokens are found by a regular expression and
        decoded with numpy, several times faster than ``read_ints``; on any fault the sequential reader locates
        it and raises."""
        raw, pos = self._raw, self.offset
        tokens = _INT_TOKEN.findall(raw, pos)
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        del tokens
        if int(lengths.sum()) != len(raw) - pos:
            self.read_ints(len(lengths) + 1, what)  # raises at the first bad or truncated integer
            raise self.error(f"{what}: bytes left over after the last integer", pos)
        starts = pos + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        data = np.frombuffer(raw + bytes(8), dtype=np.uint8)
        control = data[starts]
        # Each token's 8 bytes after its control byte, those beyond its length zeroed, read as little-endian.
        window = data[(starts + 1)[:, None] + np.arange(8)]
        window[np.arange(8) >= (control & 0x0F)[:, None]] = 0
        magnitude = window.view("<u8")[:, 0]
        negative = control >= 0x80
        limit = np.uint64(1 << 63)
        if np.any((magnitude >= limit) & ~negative) or np.any(magnitude > limit):
            raise self.error(f"{what}: a value does not fit in 64 bits", pos)
        values = magnitude.astype(np.int64)  # 2**63 (only when negative) wraps to -2**63, which is its value
        values = np.where(negative, -values, values)
        self.offset = len(raw)
        return values, starts

    def read_floats(self, count: int, what: str = "floats") -> np.ndarray:
        """``count`` consecutive (mantissa, exponent) floats as float64."""
        start = self.offset
        pairs = self.read_ints(2 * count, what).reshape(count, 2)
        return self.floats_from_pairs(pairs, what, start)

    def floats_from_pairs(self, pairs: np.ndarray, what: str = "floats", start: int | None = None) -> np.ndarray:
        """Float64 values of [..., 2] (mantissa, exponent) integers already read with ``read_ints``."""
        pairs = np.asarray(pairs).reshape(-1, 2)
        mantissa, exponent = pairs[:, 0], pairs[:, 1]
        special = exponent >= _EXP_INF
        if np.any((exponent < -32768) | ((exponent > 32767) & ~special) | (exponent > _EXP_NAN)):
            raise self.error(f"{what}: exponent out of range", start)
        with np.errstate(over="ignore"):
            values = np.ldexp(mantissa.astype(np.float64), np.where(special, 0, exponent).astype(np.int32))
        if special.any():
            values[exponent == _EXP_INF] = np.inf
            values[exponent == _EXP_NINF] = -np.inf
            values[exponent == _EXP_NAN] = np.nan
        if np.isinf(values[~special]).any():
            raise self.error(f"{what}: a value overflows", start)
        return values

    def read_bool(self, what: str = "flag") -> bool:
        self._need(1, what)
        byte = self._raw[self.offset]
        if byte not in (0x30, 0x31):
            raise self.error(f"bad {what}: byte 0x{byte:02x} is neither '0' nor '1'")
        self.offset += 1
        return byte == 0x31

    def read_bytes(self, count: int, what: str = "bytes") -> bytes:
        self._need(count, what)
        out = self._raw[self.offset : self.offset + count]
        self.offset += count
        return out

    def read_string(self, what: str = "string", max_length: int = 4096) -> str:
        """A length-prefixed ASCII string (layer names, tags); longer than ``max_length`` is refused."""
        start = self.offset
        length = self.read_uint(f"{what} length", max_length)
        text = self.read_bytes(length, what)
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not ASCII: {text[:40]!r}", start) from None

    def expect_string(self, expected: str, what: str = "tag") -> None:
        start = self.offset
        found = self.read_string(what, max_length=max(64, len(expected)))
        if found != expected:
            raise self.error(f"bad {what} {found!r} (expected {expected!r})", start)

    # -- arrays --------------------------------------------------------------------------------------------

    def _dims(self, count: int, what: str, bytes_per_item: int) -> tuple:
        """``count`` dimensions whose product, times ``bytes_per_item``, must fit in what remains."""
        start = self.offset
        dims = tuple(self.read_uint(f"{what} dimension", 1 << 40) for _ in range(count))
        items = math.prod(dims)
        if items * bytes_per_item > self.remaining:
            raise self.error(
                f"truncated or absurd {what}: dimensions {list(dims)} need {items * bytes_per_item} bytes "
                f"but {self.remaining} remain",
                start,
            )
        return dims

    def read_tensor(self, what: str = "tensor") -> np.ndarray:
        """A dlib tensor as float32 ``[n, k, rows, cols]`` (a fresh, writable array)."""
        self.expect_int(2, f"{what} version")
        dims = self._dims(4, what, 4)
        count = math.prod(dims)
        values = np.frombuffer(self._raw, dtype="<f4", count=count, offset=self.offset)
        self.offset += 4 * count
        return values.astype(np.float32).reshape(dims)  # a copy: the result does not pin the file's bytes

    def read_matrix(self, what: str = "matrix") -> np.ndarray:
        """A dlib matrix of floats as float64 ``[rows, cols]`` (dimensions stored negated, elements row-major)."""
        start = self.offset
        rows, cols = -self.read_int(f"{what} rows"), -self.read_int(f"{what} columns")
        if rows < 0 or cols < 0:
            raise self.error(f"unsupported {what} layout (dimensions {rows}, {cols} not stored negated)", start)
        if rows * cols * 2 > self.remaining:
            raise self.error(
                f"truncated or absurd {what}: {rows}x{cols} floats need at least {rows * cols * 2} bytes "
                f"but {self.remaining} remain",
                start,
            )
        return self.read_floats(rows * cols, f"{what} elements").reshape(rows, cols)

    def read_count(self, what: str, min_bytes_each: int = 1) -> int:
        """A container length; each element needs at least ``min_bytes_each`` bytes, so it must fit."""
        start = self.offset
        count = self.read_uint(f"{what} count")
        if count * min_bytes_each > self.remaining:
            raise self.error(f"truncated or absurd {what} count {count} for {self.remaining} remaining bytes", start)
        return count

    def require_end(self) -> None:
        """Refuse trailing bytes: a file that holds more than the model is not the model."""
        if self.remaining:
            raise self.error(f"{self.remaining} unexpected trailing bytes")
