"""A config value meshlift writes itself, packed so that large meshes fit Pulumi's config channel.

Pulumi's language hosts hand the whole stack config to the program in one
environment variable (`PULUMI_CONFIG`, JSON). Linux caps a single environment
string at 128 KiB (MAX_ARG_STRLEN), and past it the program does not even start
("fork/exec .../python3: argument list too long"). `meshlift:inventory` grows
with every workload (about 230 bytes each as plain JSON), so it is written
packed: `gzip+base64:` and the gzip (mtime 0, so the same inventory always packs
the same) of its compact JSON. It stays in the stack config, so the stack history
still records exactly what each update applied, and a rollback re-applies it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from typing import Any

PREFIX = "gzip+base64:"
# An inventory of 20,000 workloads is about 5 MB of JSON; a few hundred bytes of gzip can claim
# gigabytes, so decoding stops here instead of exhausting memory.
MAX_UNPACKED_BYTES = 16 * 1024 * 1024


def pack(value: Any) -> str:
    """The packed form of a JSON value; a value that is already packed is returned as is."""
    if is_packed(value):
        return value
    data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    return PREFIX + base64.b64encode(gzip.compress(data, mtime=0)).decode()


def is_packed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def unpack(value: Any) -> Any:
    """A packed value's JSON value; anything else is returned unchanged. ValueError if it is corrupt."""
    if not is_packed(value):
        return value
    try:
        data = _gunzip_bounded(base64.b64decode(value[len(PREFIX):], validate=True))
    except (binascii.Error, OSError, EOFError, zlib.error, ValueError) as error:
        raise ValueError(f"a packed value meshlift did not write, or one cut short ({error})") from error
    try:
        return json.loads(data)
    except ValueError as error:
        raise ValueError(f"a packed value meshlift did not write ({error})") from error


def _gunzip_bounded(data: bytes) -> bytes:
    """The gzip member's content, refused past MAX_UNPACKED_BYTES before it is all in memory."""
    inflater = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
    out = inflater.decompress(data, MAX_UNPACKED_BYTES + 1)
    if len(out) > MAX_UNPACKED_BYTES:
        raise ValueError(f"it expands past {MAX_UNPACKED_BYTES // (1024 * 1024)} MiB")
    if not inflater.eof:
        raise EOFError("the gzip data ends early")
    return out
