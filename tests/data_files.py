"""Locate real test images shipped inside installed packages (DESIGN.md section 8), or skip.

Nothing here downloads: package folders are found with ``importlib.util.find_spec`` (without
importing heavy packages such as nilearn or dipy), and pydicom's files are looked up with
``get_testdata_file(..., download=False)``, which also searches the pydicom-data package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

__all__ = [
    "dipy_file",
    "nibabel_file",
    "nilearn_file",
    "package_dir",
    "pydicom_file",
    "pydicom_series_dir",
    "skimage_file",
    "stardist_file",
]

MNI_T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
MNI_GM = "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"


def package_dir(package: str) -> Path | None:
    """The folder of an installed package (not imported), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _in_package(package: str, *parts: str) -> Path:
    base = package_dir(package)
    path = base.joinpath(*parts) if base is not None else None
    if path is None or not path.exists():
        pytest.skip(f"test file {'/'.join(parts)} of package {package} is not installed")
    return path


def nilearn_file(name: str = MNI_T1) -> Path:
    """A file of nilearn's bundled data (``nilearn/datasets/data``), e.g. the MNI152 template."""
    return _in_package("nilearn", "datasets", "data", name)


def dipy_file(name: str = "aniso_vox.nii.gz") -> Path:
    """A file of dipy's bundled data (``dipy/data/files``)."""
    return _in_package("dipy", "data", "files", name)


def nibabel_file(name: str) -> Path:
    """A file of nibabel's test data (``nibabel/tests/data``)."""
    return _in_package("nibabel", "tests", "data", name)


def stardist_file(name: str = "img2d.tif") -> Path:
    """A file of stardist's example images (``stardist/data/images``)."""
    return _in_package("stardist", "data", "images", name)


def skimage_file(name: str) -> Path:
    """A file of scikit-image's bundled data (``skimage/data``)."""
    return _in_package("skimage", "data", name)


def pydicom_file(name: str) -> Path:
    """A pydicom test file (pydicom itself or pydicom-data), never downloaded."""
    pydicom_data = pytest.importorskip("pydicom.data")
    try:
        found = pydicom_data.get_testdata_file(name, download=False)
    except (OSError, ValueError):
        found = None
    if not found:
        pytest.skip(f"pydicom test file {name} is not installed")
    return Path(str(found))


def pydicom_series_dir(name: str = "CT5N") -> Path:
    """The folder of a series of pydicom's ``dicomdirtests/98892001`` (CT5N: 5 CT slices)."""
    return _in_package("pydicom", "data", "test_files", "dicomdirtests", "98892001", name)
