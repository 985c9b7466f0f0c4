"""CT windows, percentile normalisation and the automatic choice by modality."""

from __future__ import annotations

import numpy as np
import pytest

from medsam2.errors import InputError
from medsam2.preprocessing import (
    Window,
    apply_window,
    normalize_intensity,
    normalize_volume,
    parse_window,
    percentile_normalize,
)
from medsam2.types import Volume


@pytest.mark.parametrize(
    ("window", "values", "expected"),
    [
        ("abdomen", [-1000, -160, 40, 240, 3000], [0.0, 0.0, 0.5, 1.0, 1.0]),
        ("lung", [-1350, -600, 150], [0.0, 0.5, 1.0]),
        ("bone", [-500, 400, 1300], [0.0, 0.5, 1.0]),
        ("brain", [0, 40, 80, 100], [0.0, 0.5, 1.0, 1.0]),
        ("Abdomen", [-160, 240], [0.0, 1.0]),
        ("400,40", [-160, 240], [0.0, 1.0]),
        ("W400,L40", [-160, 240], [0.0, 1.0]),
        (" 1500 , -600 ", [-1350, 150], [0.0, 1.0]),
        ((400, 40), [-160, 140], [0.0, 0.75]),
        (Window(2.0, 0.0), [-1.0, 0.0, 1.0], [0.0, 0.5, 1.0]),
    ],
)
def test_window_values(window: object, values: list[float], expected: list[float]) -> None:
    out = apply_window(np.array(values, dtype=np.int16), window)  # type: ignore[arg-type]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-7)


@pytest.mark.parametrize(
    ("spec", "width", "level"),
    [("abdomen", 400, 40), ("lung", 1500, -600), ("bone", 1800, 400), ("brain", 80, 40), ("350,50", 350, 50)],
)
def test_parse_window(spec: str, width: float, level: float) -> None:
    assert parse_window(spec) == Window(width, level)


@pytest.mark.parametrize(
    "spec", ["liver", "", "400", "abc,def", "0,40", "-400,40", "400,40,3", (0, 40), (1,), "nan,1"]
)
def test_invalid_windows_name_the_argument(spec: object) -> None:
    with pytest.raises(InputError, match="^window:"):
        normalize_intensity(np.zeros(3), "CT", spec)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="^ct_window:"):
        parse_window(spec, name="ct_window")  # type: ignore[arg-type]


def test_percentile_maps_range_to_unit_interval() -> None:
    ramp = np.arange(1001.0)
    out = percentile_normalize(ramp)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out[500], 0.5, atol=1e-6)
    assert out[5] == 0.0 and out[995] == 1.0  # 0.5th and 99.5th percentiles


@pytest.mark.parametrize(
    "array",
    [
        np.full((4, 5, 6), 7.0),
        np.zeros((3, 3), np.uint8),
        np.full(5, np.nan),
        np.zeros((0, 4)),
        np.ones(3, bool),
    ],
)
def test_percentile_constant_is_zero_without_nan(array: np.ndarray) -> None:
    out = percentile_normalize(array)
    assert out.shape == array.shape and out.dtype == np.float32
    assert np.all(out == 0.0)


def test_percentile_ignores_non_finite() -> None:
    a = np.arange(1001.0)
    a[0] = np.nan
    a[1] = np.inf
    out = percentile_normalize(a)
    assert np.all(np.isfinite(out)) and out[0] == 0.0 and out[1] == 1.0
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_percentile_is_over_whole_volume() -> None:
    vol = np.zeros((2, 10, 10))
    vol[1] = 100.0  # slice 0 dark, slice 1 bright: one scale for the whole volume
    out = percentile_normalize(vol)
    assert np.all(out[0] == 0.0) and np.all(out[1] == 1.0)


@pytest.mark.parametrize(
    ("modality", "window", "value", "expected"),
    [
        ("CT", None, 240.0, 1.0),  # abdomen window: 40 HU -> 0.5, 240 -> 1
        ("ct", "auto", 40.0, 0.5),
        ("CT", "lung", -600.0, 0.5),
        ("CT", "percentile", 40.0, 0.0),
        ("MR", None, 40.0, 0.0),
        (None, None, 40.0, 0.0),
        ("PT", None, 40.0, 0.0),
        ("MR", "400,40", 40.0, 0.5),
    ],
)
def test_automatic_choice(modality: str | None, window: str | None, value: float, expected: float) -> None:
    # a volume of mostly `value` with a ramp, so percentiles send `value` (the minimum) to 0
    array = np.concatenate([np.full(500, value), value + np.arange(1, 501)])
    out = normalize_intensity(array, modality, window)
    assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    assert out[0] == pytest.approx(expected, abs=1e-6)


def test_normalize_volume_uses_modality() -> None:
    vol = Volume(np.array([[-160.0, 240.0]]), (1.0, 1.0), (0.0, 0.0), np.eye(2), modality="CT")
    np.testing.assert_array_equal(normalize_volume(vol), [[0.0, 1.0]])
    np.testing.assert_array_equal(normalize_volume(vol, "brain"), [[0.0, 1.0]])


def test_input_not_modified() -> None:
    a = np.array([-500.0, 0.0, 500.0], dtype=np.float32)
    apply_window(a, "abdomen")
    percentile_normalize(a)
    np.testing.assert_array_equal(a, [-500.0, 0.0, 500.0])


def test_percentile_bounds_checked() -> None:
    with pytest.raises(InputError, match="percentiles"):
        percentile_normalize(np.arange(5.0), 60, 40)
