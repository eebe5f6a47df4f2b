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
        return json.loads(gzip.decompress(base64.b64decode(value[len(PREFIX):], validate=True)))
    except (binascii.Error, OSError, EOFError, zlib.error, ValueError) as error:
        raise ValueError(f"a packed value meshlift did not write, or one cut short ({error})") from error
