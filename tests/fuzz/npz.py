"""Data border, part 2: .npy and .npz files written by hand, and damage at the archive level
(declared shapes far beyond the data, broken .npy headers, truncation, duplicate or extra
members, compression, ZIP flags)."""
from __future__ import annotations

import io
import random
import struct
import warnings
import zipfile

import numpy as np

from .case import flip_bytes


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as an .npy file (pickled for object arrays, as np.save does)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape, descr: str = "<f4", fortran: bool = False, version=(1, 0)) -> bytes:
    """An .npy header declaring ``shape`` and ``descr``, whatever data follows it."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buffer, header)
    else:
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def raw_npy_header(text: str, version=(1, 0)) -> bytes:
    """An .npy header holding ``text`` as its header dict (any text: a broken dict, code...)."""
    body = text.encode("latin-1")
    size = 4 if version >= (2, 0) else 2
    body += b" " * (-(8 + size + len(body) + 1) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack("<I" if size == 4 else "<H", len(body)) + body


def zip_members(members: list, compression=zipfile.ZIP_STORED, zip64: bool = False) -> bytes:
    """An archive of (name, bytes) members, duplicates allowed."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, data in members:
                with archive.open(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), "w", force_zip64=zip64) as f:
                    f.write(data)
    return buffer.getvalue()


def _patch_headers(blob: bytes, name: str, flag: int | None = None, method: int | None = None) -> bytes:
    """Set the flag bits or the compression method of member ``name`` in its local and central headers."""
    data = bytearray(blob)
    encoded = name.encode()
    for signature, flag_at, method_at, name_at in ((b"PK\x03\x04", 6, 8, 30), (b"PK\x01\x02", 8, 10, 46)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            if data[at + name_at:at + name_at + len(encoded)] == encoded:
                if flag is not None:
                    struct.pack_into("<H", data, at + flag_at, struct.unpack_from("<H", data, at + flag_at)[0] | flag)
                if method is not None:
                    struct.pack_into("<H", data, at + method_at, method)
            start = at + 4
    return bytes(data)


def archive_mutation(members: list, specs: dict, rng: random.Random, nrng) -> tuple[bytes, str]:
    """Damage at the archive level: huge declared shapes with tiny data, bad .npy headers, data
    shorter/longer than declared, truncation, flipped bytes, duplicate members, empty archive,
    non-.npy members, compression, ZIP64, encrypted or unknown-method flags, an .npy or non-ZIP file."""
    choice = rng.choice(["huge", "huge", "header", "short", "long", "truncate", "flip", "duplicate", "empty",
                         "non-npy", "deflate", "zip64", "encrypted", "method", "npy-file", "not-zip", "dir-entry"])
    name, (shape, dtype) = rng.choice(list(specs.items()))
    member = f"{name}.npy"
    if choice == "huge":
        declared = rng.choice([(10**12,) + tuple(shape), (2**40,) + tuple(shape), (16,) + (10**9,) * max(len(shape), 1),
                               (10**6,) + tuple(shape), (2**62,)])
        data = npy_header(declared, np.dtype(dtype).str, fortran=rng.random() < 0.3) + bytes(64)
        members = [(m, b) for m, b in members if m != member] + [(member, data)]
        return zip_members(members), f"{member}: header declares shape {declared}, 64 bytes of data"
    if choice == "header":
        rows = (16,) + tuple(shape)
        header = rng.choice([
            raw_npy_header("{'descr': '<f4'}"),
            raw_npy_header(f"{{'descr': '<x9', 'fortran_order': False, 'shape': {rows}, }}"),
            raw_npy_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': {(-16,) + tuple(shape)}, }}"),
            raw_npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1.5, 4), }"),
            raw_npy_header(f"{{'descr': 'O', 'fortran_order': False, 'shape': {rows}, }}"),
            raw_npy_header(f"{{'descr': '<f4', 'fortran_order': 'yes', 'shape': {rows}, }}"),
            raw_npy_header("__import__('os').getpid()"),
            raw_npy_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': {rows}, }}", version=(9, 9)),
            raw_npy_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': {rows}, }}", version=(3, 0)),
            b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 40,
            b"\x93NUMPY",
            npy_header(rows, np.dtype(dtype).str, version=(2, 0)),
        ])
        members = [(m, b) for m, b in members if m != member] + [(member, header + bytes(16 * 4 * int(np.prod(shape))))]
        return zip_members(members), f"{member}: odd .npy header {header[:24]!r}"
    if choice in ("short", "long"):
        new = []
        for m, b in members:
            if m == member:
                b = b[:len(b) - rng.randint(1, 40)] if choice == "short" else b + bytes(rng.choice([1, 4, 64]))
            new.append((m, b))
        return zip_members(new), f"{member}: data {choice}er than declared"
    if choice == "duplicate":
        extra = [(m, b) for m, b in members if m == member]
        return zip_members(members + extra[:1]), f"{member} twice in the archive"
    if choice == "empty":
        return zip_members([]), "empty archive"
    if choice == "non-npy":
        extra = rng.choice([("readme.txt", b"hello"), (name, members[0][1]), ("sub/x.npy", members[0][1])])
        return zip_members(members + [extra]), f"extra member {extra[0]!r}"
    if choice == "dir-entry":
        return zip_members(members + [("folder/", b"")]), "a directory entry"
    if choice == "deflate":
        method = rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
        return zip_members(members, method), f"members compressed (method {method})"
    if choice == "zip64":
        return zip_members(members, zip64=True), "ZIP64 members"
    if choice == "encrypted":
        return _patch_headers(zip_members(members), member, flag=1), f"{member} flagged encrypted"
    if choice == "method":
        return _patch_headers(zip_members(members), member, method=rng.choice([1, 6, 99, 12])), f"{member}: odd method"
    if choice == "npy-file":
        return members[0][1], "a single .npy file"
    if choice == "not-zip":
        return rng.choice([b"", b"PK", b"PK\x03\x04garbage", b"hello", bytes(100), b"\x93NUMPY"]), "not a ZIP"
    blob = zip_members(members)
    flipped, note = flip_bytes(blob, rng)
    if choice == "truncate":
        cut = rng.randrange(len(blob))
        return blob[:cut], f"archive cut at {cut} of {len(blob)} bytes"
    return flipped, note


def savez_bytes(arrays: dict) -> bytes:
    """``arrays`` as np.savez writes them (its own member names and headers); names np.savez
    cannot take go through ``zip_members``."""
    if not all(k and "/" not in k for k in arrays):
        return zip_members([(f"{k}.npy", npy_bytes(v)) for k, v in arrays.items()])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
