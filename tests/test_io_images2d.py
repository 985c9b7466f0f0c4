"""2D images: PNG/JPEG/TIFF/BMP in 8 and 16 bit, (column, row) order, and the channel policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_files import skimage_file
from PIL import Image

from medsam2.errors import InputError
from medsam2.io import read_image, write_mask

RNG = np.random.default_rng(0)


def _grey(dtype: type = np.uint8, high: int = 255) -> np.ndarray:
    return RNG.integers(0, high, size=(10, 12), endpoint=True).astype(dtype)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_grey_8bit_exact_and_column_row_order(tmp_path: Path, suffix: str) -> None:
    picture = _grey()
    path = tmp_path / f"g{suffix}"
    Image.fromarray(picture).save(path)
    vol = read_image(path)
    assert vol.shape == (12, 10) and vol.array.dtype == np.uint8 and vol.metadata["channels"] == "grey"
    assert vol.array[11, 3] == picture[3, 11]  # array[x, y]
    np.testing.assert_array_equal(vol.array, picture.T)
    assert vol.spacing == (1.0, 1.0) and vol.origin == (0.0, 0.0)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_grey_16bit_values_above_255_kept(tmp_path: Path, suffix: str) -> None:
    picture = _grey(np.uint16, 65535)
    picture[0, 0] = 65535
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(picture).save(path)
    vol = read_image(path)
    assert vol.array.dtype == np.uint16 and int(vol.array.max()) == 65535
    np.testing.assert_array_equal(vol.array, picture.T)


def test_16bit_rgb_tiff_kept(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    picture = RNG.integers(0, 65535, size=(10, 12, 3)).astype(np.uint16)
    tifffile.imwrite(str(tmp_path / "c.tif"), picture, photometric="rgb")
    vol = read_image(tmp_path / "c.tif")
    assert vol.array.dtype == np.uint16 and vol.array.shape == (12, 10, 3)
    np.testing.assert_array_equal(vol.array, picture.transpose(1, 0, 2))


def test_grey_jpeg(tmp_path: Path) -> None:
    Image.fromarray(_grey()).save(tmp_path / "g.jpg", quality=95)
    vol = read_image(tmp_path / "g.jpg")
    assert vol.ndim == 2 and vol.array.ndim == 2 and vol.metadata["format"] == "jpeg"


def test_colour_policy_on_rgb(tmp_path: Path) -> None:
    picture = RNG.integers(0, 255, size=(10, 12, 3)).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "c.png")
    auto = read_image(tmp_path / "c.png")
    assert auto.array.shape == (12, 10, 3) and auto.metadata["channels"] == "rgb"
    np.testing.assert_array_equal(auto.array, picture.transpose(1, 0, 2))
    grey = read_image(tmp_path / "c.png", channel="gray")
    expected = np.rint(picture.astype(float) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    np.testing.assert_array_equal(grey.array, expected.T)
    assert grey.metadata["channels"] == "luminance"
    green = read_image(tmp_path / "c.png", channel=1)
    np.testing.assert_array_equal(green.array, picture[..., 1].T)
    with pytest.raises(InputError, match=r"c.png: is a colour image but channel='error'"):
        read_image(tmp_path / "c.png", channel="error")
    with pytest.raises(InputError, match=r"c.png: channel=3 is out of range; the image has 3 channel"):
        read_image(tmp_path / "c.png", channel=3)
    with pytest.raises(InputError, match=r"channel='colour' is not valid"):
        read_image(tmp_path / "c.png", channel="colour")


def test_grey_saved_as_rgb_becomes_grey(tmp_path: Path) -> None:
    picture = _grey()
    Image.fromarray(np.repeat(picture[..., None], 3, axis=-1)).save(tmp_path / "g.png")
    for channel in (None, "error", "grey"):
        vol = read_image(tmp_path / "g.png", channel=channel)
        assert vol.array.ndim == 2
        np.testing.assert_array_equal(vol.array, picture.T)
    assert read_image(tmp_path / "g.png", channel="rgb").array.shape == (12, 10, 3)


def test_rgba_opaque_alpha_dropped_transparent_refused(tmp_path: Path) -> None:
    rgba = RNG.integers(0, 255, size=(10, 12, 4)).astype(np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert read_image(tmp_path / "opaque.png").array.shape == (12, 10, 3)
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    with pytest.raises(InputError, match=r"clear.png: has transparent pixels .* channel=3"):
        read_image(tmp_path / "clear.png")
    assert read_image(tmp_path / "clear.png", channel="rgb").array.shape == (12, 10, 3)
    np.testing.assert_array_equal(read_image(tmp_path / "clear.png", channel=3).array, rgba[..., 3].T)


def test_grey_alpha_png_read_with_pillow_fallback(tmp_path: Path) -> None:
    la = np.stack([_grey(), np.full((10, 12), 255, np.uint8)], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    vol = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(vol.array, la[..., 0].T)


def test_palette_png(tmp_path: Path) -> None:
    Image.fromarray(_grey()).convert("P").save(tmp_path / "p.png")
    vol = read_image(tmp_path / "p.png")
    assert vol.array.ndim == 2  # a grey palette becomes grey


def test_grey_to_rgb_replicates(tmp_path: Path) -> None:
    picture = _grey()
    Image.fromarray(picture).save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "g.png", channel="rgb")
    assert rgb.array.shape == (12, 10, 3)
    np.testing.assert_array_equal(rgb.array[..., 2], picture.T)
    with pytest.raises(InputError, match=r"channel=1 is out of range; the image has 1 channel"):
        read_image(tmp_path / "g.png", channel=1)


def test_real_rgb_jpeg_and_grey_png() -> None:
    retina = read_image(skimage_file("retina.jpg"))
    assert retina.array.shape == (1411, 1411, 3) and retina.metadata["channels"] == "rgb"
    camera = read_image(skimage_file("camera.png"))
    assert camera.shape == (512, 512) and camera.array.ndim == 2


def test_png_mask_round_trip_8_and_16_bit(tmp_path: Path) -> None:
    Image.fromarray(_grey()).save(tmp_path / "g.png")
    ref = read_image(tmp_path / "g.png")
    small = np.zeros(ref.shape, np.int64)
    small[3, 4] = 2
    back = read_image(write_mask(small, ref, tmp_path / "m8.png"))
    assert back.array.dtype == np.uint8 and back.array[3, 4] == 2
    big = small * 200
    back16 = read_image(write_mask(big, ref, tmp_path / "m16.png"))
    assert back16.array.dtype == np.uint16 and back16.array[3, 4] == 400
