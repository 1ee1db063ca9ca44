"""Reading a `.npz` weights file member by member, each header before its data.

`np.load` inflates a member whole before anything can look at its shape, so a 3 MB file of
zeros that claims gigabytes costs gigabytes. Here a member is opened as a stream: its `.npy`
magic and header (a few hundred bytes) are read first so that the caller can judge name, dtype
and shape; its data is read only when the caller has accepted that header, after comparing the
byte count the header implies with what the zip entry says it holds, and never beyond it.
"""

from __future__ import annotations

import ast
import math
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO

import numpy as np

MAX_HEADER_BYTES = 10_000
MAX_MEMBERS = 100_000
# What reading a zip can raise on a damaged or hostile file, besides our own ValueError.
READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # a compression method zipfile does not know
    RuntimeError,  # an encrypted member
)


class MemberError(ValueError):
    """A member that is not an acceptable array; the message says why."""


@dataclass(frozen=True)
class Header:
    """One member's `.npy` header: what its data claims to be."""

    key: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int  # where the data starts in the member

    @property
    def elements(self) -> int:
        """Number of elements the header claims."""
        return math.prod(self.shape)

    @property
    def data_bytes(self) -> int:
        """Bytes of data the header claims."""
        return self.elements * self.dtype.itemsize


def members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members keyed by array name (`.npy` stripped); names that are not `.npy`
    files or appear twice are refused."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise MemberError(f"the archive has {len(infos)} members; expected at most {MAX_MEMBERS}")
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise MemberError(
                f"member {info.filename!r} is not a .npy array (raw bytes); expected "
                "<node>.<weight>.npy members only"
            )
        key = info.filename[: -len(".npy")]
        if key in out:
            raise MemberError(f"member {info.filename!r} appears twice")
        out[key] = info
    return out


def _read_exactly(stream: IO[bytes], count: int, key: str) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise MemberError(f"array {key!r} ends after {len(data)} bytes; expected {count}")
    return data


def read_header(zf: zipfile.ZipFile, key: str, info: zipfile.ZipInfo) -> Header:
    """Open one member and read only its `.npy` header (never its data)."""
    with zf.open(info) as stream:
        magic = stream.read(8)
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
            raise MemberError(f"array {key!r} is not a .npy array (raw bytes)")
        major = magic[6]
        if major not in (1, 2, 3):
            raise MemberError(f"array {key!r} has .npy format version {major}; expected 1 to 3")
        size_bytes = 2 if major == 1 else 4
        header_len = int.from_bytes(_read_exactly(stream, size_bytes, key), "little")
        if header_len > MAX_HEADER_BYTES:
            raise MemberError(
                f"array {key!r} has a header of {header_len} bytes; expected at most "
                f"{MAX_HEADER_BYTES}"
            )
        text = _read_exactly(stream, header_len, key)
    return _parse_header(key, info, text, 8 + size_bytes + header_len)


def _parse_header(key: str, info: zipfile.ZipInfo, text: bytes, offset: int) -> Header:
    try:
        fields = ast.literal_eval(text.decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise MemberError(f"array {key!r} has an unreadable .npy header") from None
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        raise MemberError(f"array {key!r} has an unreadable .npy header")
    shape, descr, fortran = fields["shape"], fields["descr"], fields["fortran_order"]
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise MemberError(f"array {key!r} has an unreadable shape in its .npy header")
    if not isinstance(descr, str):
        raise MemberError(
            f"array {key!r} holds records or Python objects (a pickle); expected float32"
        )
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise MemberError(f"array {key!r} has an unknown dtype {descr[:20]!r}") from None
    if dtype.hasobject:
        raise MemberError(f"array {key!r} holds Python objects (a pickle); expected float32")
    return Header(key, info, shape, dtype, bool(fortran), offset)


def read_data(zf: zipfile.ZipFile, header: Header) -> np.ndarray:
    """The member's data, read only now and never beyond what its header claims (a header
    whose byte count differs from its zip entry's size is refused before reading)."""
    info = header.info
    if info.file_size != header.offset + header.data_bytes:
        raise MemberError(
            f"array {header.key!r} claims shape {list(header.shape)} of {header.dtype} "
            f"({header.data_bytes} bytes) but its zip entry holds "
            f"{max(0, info.file_size - header.offset)} bytes of data"
        )
    with zf.open(header.info) as stream:
        _read_exactly(stream, header.offset, header.key)
        raw = _read_exactly(stream, header.data_bytes, header.key)
        if stream.read(1):
            raise MemberError(f"array {header.key!r} has data beyond its shape")
    order = "F" if header.fortran_order else "C"
    return np.frombuffer(raw, dtype=header.dtype).reshape(header.shape, order=order)
