"""`medsam2 segment` end to end on real files (MNI152 template, pydicom's CT series), as a user
would run it, plus its error contract (one line, exit 2, no output written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from data_files import nilearn_file, pydicom_series_dir

from medsam2 import save_model
from medsam2.cli.main import main
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = Sam2Model(get_preset("tiny"))
    with torch.no_grad():  # random weights biased to "object present" so outputs are non-empty
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def mni(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MNI152 template cropped to 60 axial slices, to keep the run short."""
    img = sitk.ReadImage(str(nilearn_file()))
    crop = img[40:160, 40:190, 60:120]
    path = tmp_path_factory.mktemp("mni") / "mni_crop.nii.gz"
    sitk.WriteImage(crop, str(path))
    return path


def test_segment_mni_writes_mask_in_input_geometry(
    mni: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "brain.nii.gz"
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps(
            {
                "objects": [
                    {"id": 1, "name": "brain", "prompts": [{"box": [[20, 30, 30], [100, 120, 30]]}]},
                    {"id": 2, "name": "ventricle", "prompts": [{"point": [60, 75, 35], "label": 1}]},
                ]
            }
        )
    )
    code = main(
        [
            "segment",
            str(mni),
            "--prompts",
            str(prompts),
            "--checkpoint",
            str(checkpoint),
            "--memory",
            "fifo",
            "--overlays",
            str(tmp_path / "ov"),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    src, got = nib.load(str(mni)), nib.load(str(out))
    assert got.shape == src.shape
    np.testing.assert_allclose(got.affine, src.affine, atol=1e-5)
    labels = np.asarray(got.dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2} and labels.dtype == np.uint8
    summary = json.loads((tmp_path / "brain.json").read_text())
    assert [o["id"] for o in summary["objects"]] == [1, 2]
    assert summary["objects"][0]["prompted_slices"] == [30]
    assert summary["objects"][0]["voxels"] == int((labels == 1).sum())
    assert sorted(p.name for p in (tmp_path / "ov").iterdir())[0].startswith("slice_")
    assert "object 1 (brain)" in capsys.readouterr().out


def test_segment_dicom_series(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg.nrrd"
    code = main(
        [
            "segment",
            str(pydicom_series_dir()),
            "--point",
            "8,8,2",
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    ref = sitk.ImageSeriesReader()
    ref.SetFileNames(ref.GetGDCMSeriesFileNames(str(pydicom_series_dir())))
    src, got = ref.Execute(), sitk.ReadImage(str(out))
    assert got.GetSize() == src.GetSize()
    np.testing.assert_allclose(got.GetSpacing(), src.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(got.GetOrigin(), src.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(got.GetDirection(), src.GetDirection(), atol=1e-6)
    summary = json.loads((tmp_path / "seg.json").read_text())
    assert summary["intensity"].startswith("abdomen")  # DICOM says CT


def test_world_flag_matches_voxel_flag(mni: Path, checkpoint: Path, tmp_path: Path) -> None:
    img = sitk.ReadImage(str(mni))
    world = img.TransformContinuousIndexToPhysicalPoint((60.0, 75.0, 35.0))
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    common = ["--checkpoint", str(checkpoint), "--memory", "fifo", "--direction", "forward"]
    assert main(["segment", str(mni), "--point", "60,75,35", *common, "-o", str(a)]) == 0
    assert (
        main(["segment", str(mni), "--point=" + ",".join(map(str, world)), "--world", *common, "-o", str(b)])
        == 0
    )
    assert np.array_equal(np.asarray(nib.load(str(a)).dataobj), np.asarray(nib.load(str(b)).dataobj))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--point", "60,75"], "--point 60,75: expected I,J,K"),
        (["--point", "600,75,3"], "point 1"),
        (["--point", "60,75,300"], "point 1"),
        (["--box", "90,30,30,20,120,30"], "wrong order"),
        ([], "no prompts"),
        (["--point", "1,1,1", "--window", "soft"], "window"),
        (["--point", "1,1,1", "--axis", "oblique"], "oblique"),
        (["--point", "1,1,1", "--mask-prompt", "MISSING.nii.gz"], "MISSING.nii.gz"),
        (["--point", "1,1,1", "--device", "tpu"], "--device tpu"),
        (["--point", "1,1,1", "--tracker", "boxes"], "--tracker boxes: choose auto, memory or box-chain"),
    ],
)
def test_bad_input_one_line_no_output(
    mni: Path,
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "o.nii.gz"
    code = main(["segment", str(mni), *extra, "--checkpoint", str(checkpoint), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "o.json").exists()


def test_wrong_shape_mask_prompt_and_bad_input_file(
    mni: Path, checkpoint: Path, tmp_path: Path, capsys
) -> None:
    small = tmp_path / "small.nii.gz"
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkUInt8), str(small))
    out = tmp_path / "o.nii.gz"
    assert (
        main(
            [
                "segment",
                str(mni),
                "--mask-prompt",
                str(small),
                "--checkpoint",
                str(checkpoint),
                "-o",
                str(out),
            ]
        )
        == 2
    )
    assert "differs from the input" in capsys.readouterr().err
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not an image")
    assert (
        main(["segment", str(junk), "--point", "1,1,1", "--checkpoint", str(checkpoint), "-o", str(out)]) == 2
    )
    assert "junk.nii.gz" in capsys.readouterr().err
    assert not out.exists()


def test_existing_output_needs_overwrite(mni: Path, checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.nii.gz"
    shutil.copy(mni, out)
    before = out.read_bytes()
    assert (
        main(["segment", str(mni), "--point", "60,75,35", "--checkpoint", str(checkpoint), "-o", str(out)])
        == 2
    )
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before


def test_box_chain_tracker_from_the_command_line(tmp_path: Path) -> None:
    """`--checkpoint embedded:nano-track` chains boxes through a volume unless `--tracker memory`
    says otherwise (its config's tracker). On a validation CT phantom (seed 8000, the spleen boxed
    on its largest slice): the mask keeps the input's geometry, the summary names the tracker
    used, and the chained spleen is found on its own slices (Dice > 0.8) where the memory path,
    asked for explicitly, scores 0.68."""
    from medsam2.data.phantoms import ct_phantom
    from medsam2.data.phantoms_io import write_phantom
    from medsam2.evaluation.metrics import dice_np

    ph = ct_phantom(seed=8000)
    image = tmp_path / "ct.nii.gz"
    write_phantom(ph, image, tmp_path / "ct_label.nii.gz")
    spleen = ph.label == 4
    k = int(spleen.sum((0, 1)).argmax())
    xs, ys = np.nonzero(spleen[:, :, k])
    box = f"{xs.min()},{ys.min()},{k},{xs.max()},{ys.max()},{k}"
    out = tmp_path / "spleen.nii.gz"
    argv = ["segment", str(image), "--box", box, "--window", "abdomen", "-o", str(out), "--overwrite"]
    argv += ["--checkpoint", "embedded:nano-track"]
    scores = {}
    for tracker in ("auto", "memory", "box-chain"):
        assert main([*argv, "--tracker", tracker] if tracker != "auto" else argv) == 0
        got = nib.load(str(out))
        np.testing.assert_allclose(got.affine, nib.load(str(image)).affine, atol=1e-5)
        labels = np.asarray(got.dataobj)
        assert labels.shape == spleen.shape
        scores[tracker] = dice_np(labels == 1, spleen)
        summary = json.loads((tmp_path / "spleen.json").read_text())
        assert summary["tracker"] == ("box-chain" if tracker == "auto" else tracker)
        assert summary["checkpoint"].endswith("nano_track.safetensors")
    assert scores["auto"] == scores["box-chain"] > 0.8 > scores["memory"]
