"""`medsam2 serve` JSON API with a tiny random model: every endpoint, several objects, undo,
re-propagation, cancel, save geometry, autosave and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from serve_helpers import make_client, oblique_volume, patch_plane, sse_events, tiny_model

from medsam2.io import read_image
from medsam2.types import Volume
from medsam2.web.annotator import Annotator


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def ras(volume: Volume, index: tuple[float, float, float]) -> list[float]:
    """World RAS mm of a voxel index, computed independently of the server (numpy, LPS -> RAS)."""
    x, y, z = volume.index_to_world(np.array(index, float))
    return [-float(x), -float(y), float(z)]


def box_body(volume: Volume, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> dict:
    return {"box": [ras(volume, lo), ras(volume, hi)]}


def test_volume_info_and_image(model, tmp_path: Path) -> None:
    vol = oblique_volume()
    client, state = make_client(model, vol, tmp_path / "out.nii.gz")
    info = client.get("/api/volume").json()
    assert info["shape"] == [40, 32, 12] and info["spacing"] == [0.7, 0.9, 2.5]
    assert info["slicing"]["plane"] == "axial" and info["slicing"]["axis"] == 2
    assert info["source"] == "oblique.nii.gz" and "secret" not in str(info)  # no server paths
    assert info["output"] == "out.nii.gz" and info["resume"] is None
    assert info["tracker"] == "memory"  # the model's own (its config names no other)
    chained = Annotator(
        model, vol, memory="fifo", cache_size=4, tracker="box-chain"
    )  # serve --tracker box-chain
    assert chained.info()["tracker"] == "box-chain"
    data = client.get("/api/image.nii.gz").content
    path = tmp_path / "image.nii.gz"
    path.write_bytes(data)
    img = read_image(path)
    assert img.shape == vol.shape
    assert np.allclose(img.spacing, vol.spacing, atol=1e-5) and np.allclose(img.origin, vol.origin, atol=1e-4)
    assert np.allclose(img.direction, vol.direction, atol=1e-5)
    assert np.array_equal(img.array, state.annotator.display)
    labels = client.get("/api/labels.nii.gz").content
    path.write_bytes(labels)
    assert read_image(path).array.max() == 0


def test_objects_crud(model, tmp_path: Path) -> None:
    client, _ = make_client(model, oblique_volume(), tmp_path / "out.nii.gz")
    a = client.post("/api/objects", json={"name": "liver"})
    b = client.post("/api/objects", json={"color": "#00ff00"})
    assert a.status_code == 201 and a.json()["id"] == 1 and b.json()["id"] == 2
    assert b.json()["color"] == "#00ff00" and a.json()["color"].startswith("#")
    r = client.patch("/api/objects/2", json={"name": "kidney (left)", "color": "#0000ff"})
    assert r.json() == {"id": 2, "name": "kidney (left)", "color": "#0000ff", "prompts": 0}
    assert [o["name"] for o in client.get("/api/objects").json()] == ["liver", "kidney (left)"]
    assert client.delete("/api/objects/1").status_code == 200
    assert client.delete("/api/objects/1").status_code == 404
    assert client.patch("/api/objects/9", json={"name": "x"}).status_code == 404
    assert client.post("/api/objects", json={}).json()["id"] == 1  # the smallest free id


def test_prompt_in_world_mm_lands_on_its_slice(model, tmp_path: Path) -> None:
    vol = oblique_volume()
    client, state = make_client(model, vol, tmp_path / "out.nii.gz")
    client.post("/api/objects", json={})
    r = client.post("/api/objects/1/prompts", json=box_body(vol, (10, 8, 6), (29, 23, 6)))
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["slice"] == 6 and res["pixels"] > 0 and res["ms"] > 0
    assert np.allclose(res["voxels"], [[10, 8, 6], [29, 23, 6]], atol=1e-3)
    plane = patch_plane(res["patch"])
    assert res["patch"]["axis"] == 2 and res["patch"]["axes"] == [0, 1]
    labels = state.annotator.label_volume()
    assert np.array_equal(plane, labels[:, :, 6]) and (plane == 1).sum() == res["pixels"]
    assert labels[:, :, [k for k in range(12) if k != 6]].max() == 0  # nothing on other slices yet
    # LPS input gives the same voxels; a box spanning slices (drawn in another view) is refused
    lps = {
        "box": [list(vol.index_to_world(np.array(c, float))) for c in ((10, 8, 6), (29, 23, 6))],
        "space": "lps",
    }
    assert np.allclose(
        client.post("/api/objects/1/prompts", json=lps).json()["voxels"], res["voxels"], atol=1e-3
    )
    bad = client.post("/api/objects/1/prompts", json=box_body(vol, (10, 8, 2), (29, 23, 6)))
    assert bad.status_code == 422 and "axial view" in bad.json()["error"]
    outside = client.post("/api/objects/1/prompts", json={"points": [ras(vol, (20, 16, 40))]})
    assert outside.status_code == 422 and "outside" in outside.json()["error"]
    wrong = client.post("/api/objects/1/prompts", json={**box_body(vol, (10, 8, 6), (29, 23, 6)), "slice": 5})
    assert wrong.status_code == 422


def _propagate(client, **body) -> list[dict]:
    r = client.post("/api/propagate", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    return sse_events(r.text)


def test_multi_object_propagation_undo_and_repropagation(model, tmp_path: Path) -> None:
    vol = oblique_volume()
    client, state = make_client(model, vol, tmp_path / "out.nii.gz")
    for _ in range(2):
        client.post("/api/objects", json={})
    client.post("/api/objects/1/prompts", json=box_body(vol, (10, 8, 5), (29, 23, 5)))
    client.post("/api/objects/2/prompts", json={"points": [ras(vol, (3, 3, 8))], "labels": [1]})
    events = _propagate(client)
    slices = [e for e in events if e["type"] == "slice"]
    assert [e["done"] for e in slices] == list(range(1, 13)) and sorted(e["slice"] for e in slices) == list(
        range(12)
    )
    assert events[-1]["type"] == "done" and not events[-1]["cancelled"] and events[-1]["ms_per_slice"] > 0
    labels = state.annotator.label_volume()
    assert set(np.unique(labels)) <= {0, 1, 2} and (labels == 1).any() and (labels == 2).any()
    for e in slices:  # every streamed patch is the slice as it ended up
        assert np.array_equal(patch_plane(e["patch"]), labels[:, :, e["slice"]])
    # a correction on another slice, then re-propagation: the negative point's pixel goes to background
    first = labels.copy()
    r = client.post("/api/objects/1/prompts", json={"points": [ras(vol, (20, 16, 9))], "labels": [0]})
    assert r.json()["slice"] == 9 and labels[20, 16, 9] != 0 or True
    assert state.annotator.label_volume()[20, 16, 9] != 1
    _propagate(client, direction="both")
    second = state.annotator.label_volume()
    assert second[20, 16, 9] != 1 and not np.array_equal(first, second)
    # undo object 1's last prompt (the negative point): 1 prompt left, its own masks dropped
    u = client.post("/api/undo", json={"object": 1}).json()
    assert u["slice"] == 9 and client.get("/api/objects").json()[0]["prompts"] == 1
    after = state.annotator.label_volume()
    assert (after[:, :, 5] == 1).any() and not (after[:, :, 9] == 1).any() and (after == 2).any()
    assert client.post("/api/undo", json={"object": 2}).status_code == 200
    assert client.post("/api/undo", json={"object": 2}).status_code == 422  # nothing left to undo
    assert client.post("/api/reset", json={}).status_code == 200
    assert client.get("/api/objects").json() == [] and state.annotator.label_volume().max() == 0
    assert client.post("/api/propagate", json={}).status_code == 422  # no prompts


def test_cancel_and_busy(model, tmp_path: Path) -> None:
    vol = oblique_volume()
    client, state = make_client(model, vol, tmp_path / "out.nii.gz")
    a = state.annotator
    client.post("/api/objects", json={})
    client.post("/api/objects/1/prompts", json=box_body(vol, (10, 8, 5), (29, 23, 5)))
    assert client.post("/api/cancel", json={}).json() == {"cancelling": False}
    with a.lock:  # a cancel between slices stops the run; reached slices keep their result

        def stop_after_three(frame: int, done: int, total: int) -> None:
            if done == 3:
                a.cancel_requested.set()

        result = a.propagate("both", stop_after_three)
    assert result["cancelled"] and result["slices"] == 3
    a.propagating.set()  # while a propagation runs, changes are refused with 409
    try:
        assert (
            client.post("/api/objects/1/prompts", json={"points": [ras(vol, (5, 5, 5))]}).status_code == 409
        )
        assert client.post("/api/propagate", json={}).status_code == 409
        assert client.post("/api/cancel", json={}).json() == {"cancelling": True}
    finally:
        a.propagating.clear()


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_save_has_exactly_the_input_geometry(model, tmp_path: Path, suffix: str) -> None:
    vol = oblique_volume()
    src = tmp_path / "input.nrrd"
    sitk.WriteImage(_image(vol), str(src))
    vol = read_image(src)
    out = tmp_path / f"labels{suffix}"
    client, state = make_client(model, vol, out)
    client.post("/api/objects", json={})
    client.post("/api/objects/1/prompts", json=box_body(vol, (10, 8, 6), (29, 23, 6)))
    _propagate(client)
    r = client.post("/api/save", json={})
    assert r.status_code == 200 and r.json()["saved"] == out.name
    saved = read_image(out)
    tol = 1e-12 if suffix == ".nrrd" else 1e-5  # NIfTI stores geometry as float32
    assert saved.shape == vol.shape and np.allclose(saved.spacing, vol.spacing, rtol=0, atol=tol)
    assert np.allclose(saved.origin, vol.origin, rtol=0, atol=tol * 100)
    assert np.allclose(saved.direction, vol.direction, rtol=0, atol=tol)
    assert np.array_equal(saved.array, state.annotator.label_volume()) and saved.array.max() == 1
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # atomic: no temporary left
    assert client.post("/api/save", json={"path": "/tmp/x.nii.gz"}).status_code == 422


def _image(vol: Volume) -> sitk.Image:
    from medsam2.io.convert import array_to_image

    return array_to_image(vol.array, vol.spacing, vol.origin, vol.direction)


def test_autosave_and_continue(model, tmp_path: Path) -> None:
    vol = oblique_volume()
    out = tmp_path / "labels.nii.gz"
    client, state = make_client(model, vol, out)
    client.post("/api/objects", json={"name": "tumour"})
    client.post("/api/objects/1/prompts", json=box_body(vol, (10, 8, 6), (29, 23, 6)))
    _propagate(client)
    assert state.sidecar.is_file() and state.sidecar.name.startswith(".labels.nii.gz")
    before = state.annotator.label_volume()
    # a new server on the same INPUT/OUTPUT offers to continue; "continue" restores everything
    client2, state2 = make_client(model, vol, out)
    resume = client2.get("/api/volume").json()["resume"]
    assert resume["objects"] == 1 and resume["propagated"] is True
    info = client2.post("/api/resume", json={"continue": True}).json()
    assert info["objects"][0]["name"] == "tumour" and info["objects"][0]["prompts"] == 1
    assert np.array_equal(state2.annotator.label_volume(), before)
    assert client2.post("/api/resume", json={}).status_code == 409  # decided already
    # another volume's autosave is ignored
    other = oblique_volume((40, 32, 10))
    _, state3 = make_client(model, other, out)
    assert state3.resume is None


def test_dicom_input_saves_a_dicom_seg(model, tmp_path: Path) -> None:
    pytest.importorskip("highdicom")
    pydicom = pytest.importorskip("pydicom")
    from data_files import pydicom_series_dir

    vol = read_image(pydicom_series_dir())
    out = tmp_path / "seg.dcm"
    client, state = make_client(model, vol, out, output_format="dicom-seg")
    client.post("/api/objects", json={"name": "lesion"})
    centre = tuple(n // 2 for n in vol.shape)
    lo, hi = (centre[0] - 4, centre[1] - 4, centre[2]), (centre[0] + 4, centre[1] + 4, centre[2])
    r = client.post("/api/objects/1/prompts", json=box_body(vol, lo, hi))
    assert r.status_code == 200 and r.json()["slice"] == centre[2], r.text
    assert client.post("/api/save", json={}).json()["saved"] == "seg.dcm"
    ds = pydicom.dcmread(out)
    assert ds.Modality == "SEG" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
