"""What `medsam2 serve` sends that is not JSON: NIfTI bytes of a volume, and the page's files.

The page's files are a fixed table (name -> packaged file, content type): no client-supplied
name is ever joined to a path.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medsam2.io.convert import array_to_image, quiet_itk
from medsam2.types import Volume

__all__ = [
    "STATIC_DIR",
    "STATIC_FILES",
    "NIIVUE_VERSION",
    "NIIVUE_SHA256",
    "nifti_bytes",
    "static_file",
    "sha256",
]

STATIC_DIR = Path(__file__).resolve().parent / "static"
NIIVUE_VERSION = "0.69.0"
# sha256 of dist/niivue.umd.js in the npm tarball @niivue/niivue@0.69.0 (checked by the tests)
NIIVUE_SHA256 = "47b896b77ec4a5be3ef1949c33ad393b6f45629921f326c279000bcf51bdb4af"

STATIC_FILES: dict[str, tuple[str, str]] = {
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "api.js": ("api.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
    "niivue.umd.js": ("niivue/niivue.umd.js", "text/javascript; charset=utf-8"),
    "NIIVUE_LICENSE.txt": ("niivue/LICENSE", "text/plain; charset=utf-8"),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def static_file(name: str) -> tuple[bytes, str] | None:
    """(content, content type) of a page file by its public name; None when unknown."""
    entry = STATIC_FILES.get(name)
    if entry is None:
        return None
    return (STATIC_DIR / entry[0]).read_bytes(), entry[1]


def nifti_bytes(array: np.ndarray, volume: Volume) -> bytes:
    """`array` (index order, the volume's shape) as .nii.gz bytes with the volume's geometry."""
    image = array_to_image(np.ascontiguousarray(array), volume.spacing, volume.origin, volume.direction)
    with tempfile.TemporaryDirectory(prefix="medsam2-serve-") as folder:
        path = Path(folder) / "volume.nii.gz"
        with quiet_itk():
            sitk.WriteImage(image, str(path), useCompression=True, compressionLevel=1)
        return path.read_bytes()
