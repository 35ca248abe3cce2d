"""I/O helpers shared by every step: atomic writes, PNG codecs for label maps, the COCO panoptic id codec.

Why atomic: a build or a submission killed half-way must never leave a file that looks complete.
Every writer here writes to a temporary name in the same folder and renames it into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
from PIL import Image

from nerfseg.errors import InputError

# ---------------------------------------------------------------------------------------------
# Atomic writes


_TEMP_ATTEMPTS = 100


def _temp_name(parent: Path, prefix: str, suffix: str) -> Path:
    return parent / f"{prefix}{secrets.token_hex(6)}{suffix}"


def create_temp_file(parent: str | Path, prefix: str = ".", suffix: str = ".tmp") -> Path:
    """Create an empty, uniquely named file in ``parent`` whose mode follows the umask (0666 & ~umask).

    ``tempfile.mkstemp`` always makes 0600 files: renamed into place they stay unreadable to lab mates
    and web servers whatever the umask. ``O_CREAT | O_EXCL`` keeps mkstemp's no-clobber guarantee.
    """
    parent = Path(parent)
    for _ in range(_TEMP_ATTEMPTS):
        candidate = _temp_name(parent, prefix, suffix)
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"{parent}: no free temporary name after {_TEMP_ATTEMPTS} attempts")


def create_temp_dir(parent: str | Path, prefix: str = ".", suffix: str = ".tmp") -> Path:
    """Like :func:`create_temp_file` for a folder (0777 & ~umask; ``tempfile.mkdtemp`` makes 0700)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_TEMP_ATTEMPTS):
        candidate = _temp_name(parent, prefix, suffix)
        try:
            os.mkdir(candidate, 0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{parent}: no free temporary name after {_TEMP_ATTEMPTS} attempts")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error delete it.

    The file gets the mode any new file would (umask applied), so a benchmark, a report or a web page
    written through here is as readable as the user's umask says.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = create_temp_file(path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays are the usual culprits (panopticapi issue #51)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(data: Any, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, default=_json_default, allow_nan=True)


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 2) -> None:
    write_bytes_atomic(path, (dumps_json(data, indent) + "\n").encode("utf-8"))


def write_npz_atomic(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """A compressed ``.npz`` written atomically: a killed run leaves the old cache or none, never a torn one."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# PNG codecs. Label maps are exact: never resampled, never anti-aliased.


def encode_png(array: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode uint8 (H,W) / (H,W,3) or uint16 (H,W) to PNG bytes (fast compression by default)."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint16 and array.ndim == 2:
        img = Image.fromarray(array)  # PIL picks mode I;16 for uint16
    elif array.dtype == np.uint8 and array.ndim in (2, 3):
        img = Image.fromarray(array)
    else:
        raise ValueError(f"unsupported array for PNG: dtype {array.dtype}, shape {array.shape}")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_png(path: str | Path, array: np.ndarray, compress_level: int = 1) -> None:
    write_bytes_atomic(path, encode_png(array, compress_level))


def read_depth_metres(path: str | Path, dtype: type = np.float32) -> np.ndarray:
    """A depth map (uint16 millimetres along the optical axis, docs/contract.md) in metres; 0 = no hit.
    One reader, so every consumer converts the stored millimetres the same way."""
    from nerfseg.spec import DEPTH_SCALE

    return read_png(path, expect="gray16").astype(dtype) / dtype(DEPTH_SCALE)


def read_png(path: str | Path, expect: str | None = None) -> np.ndarray:
    """Read a PNG into a numpy array; ``expect`` in {"rgb", "gray8", "gray16", None} checks the mode.

    Raises :class:`InputError` naming the file when it is missing, not a PNG, corrupt or of the
    wrong kind, so that a bad submission gets a message rather than a PIL traceback.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise InputError(path, f"not a PNG file (format {img.format})")
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except InputError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise InputError(path, f"corrupt or unreadable PNG ({type(exc).__name__}: {exc})") from None
    if expect == "rgb":
        if mode == "RGBA":
            arr = arr[..., :3]
        elif mode != "RGB":
            raise InputError(path, f"expected an RGB PNG, got mode {mode}")
    elif expect == "gray8":
        if mode not in ("L", "P"):
            raise InputError(path, f"expected an 8-bit single-channel PNG, got mode {mode}")
        arr = arr.astype(np.uint8, copy=False)
    elif expect == "gray16":
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = arr.astype(np.uint16, copy=False)
        elif mode == "L":
            arr = arr.astype(np.uint16)
        else:
            raise InputError(path, f"expected a 16-bit single-channel PNG, got mode {mode}")
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------------------------------
# COCO panoptic id codec (panopticapi): id = R + 256 G + 256^2 B


def rgb2id(color: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 -> (H,W) uint32 segment ids."""
    color = np.asarray(color)
    if color.ndim != 3 or color.shape[2] != 3:
        raise ValueError(f"rgb2id expects an (H,W,3) array, got shape {color.shape}")
    c = color.astype(np.uint32)
    return c[..., 0] + (c[..., 1] << 8) + (c[..., 2] << 16)


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """(H,W) integer segment ids (< 2^24) -> (H,W,3) uint8."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 24):
        raise ValueError("panoptic ids must lie in [0, 2^24)")
    ids = ids.astype(np.uint32)
    return np.stack([(ids & 0xFF), (ids >> 8) & 0xFF, (ids >> 16) & 0xFF], axis=-1).astype(np.uint8)


def read_panoptic_png(path: str | Path) -> np.ndarray:
    """Read a COCO panoptic PNG into (H,W) uint32 ids."""
    return rgb2id(read_png(path, expect="rgb"))


def write_panoptic_png(path: str | Path, ids: np.ndarray) -> None:
    write_png(path, id2rgb(ids))


def segment_bbox(mask: np.ndarray) -> list[int]:
    """COCO bbox [x, y, w, h] of a boolean mask (panopticapi convention)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def segments_info_from_ids(ids: np.ndarray, category_of: dict[int, int]) -> list[dict[str, Any]]:
    """COCO ``segments_info`` for every non-void id of a panoptic id map (vectorised area, per-segment bbox)."""
    uniq, counts = np.unique(ids, return_counts=True)
    info = []
    for seg_id, area in zip(uniq.tolist(), counts.tolist()):
        if seg_id == 0:
            continue
        info.append(
            {"id": int(seg_id), "category_id": int(category_of[seg_id]), "iscrowd": 0, "area": int(area), "bbox": segment_bbox(ids == seg_id)}
        )
    return info
