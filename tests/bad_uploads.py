"""Generated bad upload files, shared by every tab's bad-input tests.

`bad_image_files(folder)` writes one file per case and returns {case: path}. Cases that must be refused with an
UploadError message: corrupt, not_an_image, empty, huge. Cases that must be accepted (converted): rgba,
gray16, cmyk, palette.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

MUST_REFUSE = ("corrupt", "not_an_image", "empty", "huge")
MUST_ACCEPT = ("rgba", "gray16", "cmyk", "palette")


def _huge_png(path: Path, width: int = 20000, height: int = 20000) -> None:
    """A valid PNG header claiming 20000×20000 with a tiny body: decoding it would need 1.2 GB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def bad_image_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {name: folder / f"{name}.{ext}" for name, ext in [
        ("corrupt", "png"), ("not_an_image", "png"), ("empty", "png"), ("huge", "png"),
        ("rgba", "png"), ("gray16", "png"), ("cmyk", "jpg"), ("palette", "gif"),
    ]}
    good = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    good.save(files["corrupt"])
    files["corrupt"].write_bytes(files["corrupt"].read_bytes()[:60])  # header survives, pixel data cut off
    files["not_an_image"].write_text("this is a text file with an image extension\n")
    files["empty"].write_bytes(b"")
    _huge_png(files["huge"])
    Image.fromarray(rng.integers(0, 255, (40, 40, 4), dtype=np.uint8), mode="RGBA").save(files["rgba"])
    Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)).save(files["gray16"])
    good.convert("CMYK").save(files["cmyk"])
    good.convert("P").save(files["palette"])
    return files
