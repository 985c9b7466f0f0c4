"""Reproduce the embedded models: datasets -> `medsam2 train` stages -> assets.

    python scripts/train_embedded.py [--data data] [--runs runs] [--stage 1|2|3|4|3b|6|7a|...|7d|7f|7h|7g|7i|7j|8|9|9b|9c|9d|9e|micro|all] [--resume]

Stage 1 (``configs/embedded_nano.json``): `nano` from scratch on 40 CT phantoms (seeds 0-39),
6-slice clips with a box on every 3rd slice: the model learns to segment around a box.
Stage 2 (``configs/embedded_nano_memory.json``): from stage 1's final weights, on 120 CT phantoms
(seeds 0-119), image and prompt encoders frozen, one box on the first slice of each 6-slice
clip, clips reversed half of the time: the memory path learns to carry the mask along the
volume in both directions.
Stage 3 (``configs/embedded_nano_mixed.json``): from stage 2's final weights, on the union of
stage 2's CT phantoms, 40 T1 and 40 T2 MR phantoms and nilearn's real MNI152 T1 template with
its white matter (needs ``pip install nilearn``); the image encoder trains again, slower.
Stage 4 (``configs/embedded_nano_synth.json``): from stage 3's final weights, on domain-randomised
synthetic data generated on the fly (``synth:...``, :mod:`medsam2.data.synth`): painted label maps
(phantom tissues, MNI152 tissue maps with skull/scalp shells, random shapes), rendered phantoms
and supervoxels of real MR volumes and photographs; boxes and clicks on any axis; everything
trains. It teaches the model images rather than our phantoms.
The demo and the quality benchmarks use phantom seeds >= 8000 and real images never trained on
(the MNI152 T1 image itself, stardist's nuclei); see docs/embedded_model.md. Runs on whatever device is available (CPU works; docs/embedded_model.md has
the times). Stage 3b's final weights become medsam2/assets/nano.safetensors (``embedded:nano``),
stage 4's medsam2/assets/nano_synth.safetensors (``embedded:nano-synth``, the One-Prompt default),
stage 7d's nano_track.safetensors, stage 9e's nano_chain.safetensors (the default), each with its
model config (.json; nano-track's and nano-chain's name box chaining as their tracker).
Stage 3b (``configs/embedded_nano_joint.json``): a branch from stage 3's final weights on the union
of generated volumes (``synth:...``) and stage 3's CT/T1/T2 phantom datasets, prompt encoder
frozen, lower learning rates: it keeps and improves the phantom skill (validation phantoms) but,
like stage 3, does not segment real images.
Not a stage: ``configs/embedded_nano_oneprompt.json`` (stage 4 + the ``2d-one-prompt`` recipe on
generated image sets, ``synth2d:...``) raised One-Prompt Dice on generated validation sets but
lowered it on real ones; docs/embedded_model.md has the figures. Run it with
``medsam2 train --config configs/embedded_nano_oneprompt.json``.
Not a stage either: ``configs/embedded_nano_general.json`` (stage "4b": stage 4 + basic shapes
with distractors + the visibility-checked synthetic mix, boxes on every 2nd slice) raised the
basic-shapes study but lowered phantoms and real One-Prompt sets, and
``configs/embedded_nano_boxskill.json`` (stage "4c": the same data as one-frame box episodes)
raised it with phantoms unchanged but lost the fundus One-Prompt set; docs/embedded_model.md.
Stage 6 (``configs/embedded_nano_boxmask.json``): from stage 4's final weights, with
``box_mask_prompt`` (a box reaches the decoder as a dense mask as well as two corners), on basic
shapes with distractors and stage 4's generated volumes (targets with visible edges only); half
the episodes one boxed (or clicked) slice, half stage 4's 6-slice clips; 3000 steps.
Stages 7a-7d (``configs/embedded_nano_track*.json``): from stage 3b's final weights (its memory
works: docs/embedded_model.md, "Why propagation fails"), with ``box_mask_prompt``, on stage 6's
generated volumes (240 cases) and stage 3's CT/T1/T2 phantoms (7a, 1000 steps); then with one-slice
box episodes on basic shapes added (``shapes:...;slices=1``; their clips were found to erode the
memory), 200 cases (7b, 1000 steps) and 600 cases with the image encoder at a tenth of the
learning rate and a quarter of the other episodes one-slice (7c, 1500 steps), and 1500 more
steps of 7c's recipe (7d). Stage 7d's final weights are ``embedded:nano-track``.
Stage 7f (``configs/embedded_nano_chain.json``): from 7d's final weights, one-slice box (or click)
episodes only (``single_frame`` 1.0) on 7d's data, the memory modules frozen, 15000 steps (about
20 min on one thread): the box answer that box chaining propagates with. Its final weights were
``embedded:nano-chain`` until stage 7h.
Stage 7h (``configs/embedded_nano_chain_click.json``): from 7f's final weights, 10000 more steps
of 7f's recipe with corrective clicks (``correction_clicks`` 3 on half of the episodes, decoded
as box chaining decodes a user's correction; about 55 min on one thread). Its final weights
were ``embedded:nano-chain`` until stage 7j.
Stage 7g (``configs/embedded_nano_chain2.json``, not part of ``all``, not shipped): 15000 more
steps of 7f's recipe without corrections, the candidate 7h was compared with.
Stage 7i (``configs/embedded_nano_chain_click2.json``, not part of ``all``, not shipped): 10000
more steps of 7h's recipe from 7h's final weights (about 55 min on one thread); a tie with 7h on
validation, so 7h stays the default (docs/embedded_model.md, "Stage 7i: more steps of
7h's recipe (a candidate, not shipped)").
Stage 7j (``configs/embedded_nano_chain_click3.json``): 6000 more steps of 7h's recipe from
7h's final weights, after a correction on a boxed slice began to read the box densely
(docs/embedded_model.md, "Clicks after a box", "Stage 7j"); about 37 min on one thread. Its
final weights were ``embedded:nano-chain`` until stage 9c.
Stage 8 (``configs/embedded_nano_track_oneprompt.json``, not part of ``all``, not shipped):
One-Prompt training on ``synth2d`` families from 7d's final weights (whose memory carries a
mask), image and prompt encoders frozen; stopped at step 500 when the fundus twin had collapsed
(docs/embedded_model.md, "Stage 8: One-Prompt training from a memory that works").
Stages 9 and 9b (``configs/embedded_nano_chain_parts.json``, ``..._parts2.json``, not part of
``all``, not shipped): 7j's recipe plus generated "part" targets (``synth:...;part=1``: a label
whose box is a larger structure's, as grey matter's is the brain's), whose box-only answer is not
scored and which always get clicks; 5000 steps from 7j, then 6000 more with three times the
parts and twice the rate (about 21 and 33 min). Clicks did not learn to name the parts
(docs/embedded_model.md, "Stage 9: parts a box cannot name").
Stage 9c (``configs/embedded_nano_chain_clickmask.json``): 7j with ``click_mask_prompt`` (a click
on a boxed slice also painted into the dense box) on stage 9's kind of data, 6000 steps at twice
7j's rate from 7j's final weights (about 30 min). Its final weights were ``embedded:nano-chain``
until stage 9e.
Stage 9d (``configs/embedded_nano_chain_wholes.json``, not part of ``all``, not shipped): 9c's
recipe and data plus 500 generated "wholes" (``synth:...;whole=1``: a group or the foreground
filling its box, as a brain its box), 5000 steps at 1.5e-4 from 9c's final weights (28 min):
a click at such an object's edge no longer collapses it (9c took a click to mean a smaller
structure), but box chaining lost on the corrections' slices.
Stage 9e (``configs/embedded_nano_chain_wholes2.json``): 9d's kind of data with 300 wholes,
4000 steps at 1e-4 from 9c's final weights (22 min). Its final weights are
``embedded:nano-chain``, the default for volumes (docs/embedded_model.md, "Stage 9d and 9e").
Stage ``micro`` (``configs/embedded_micro.json``, not part of ``all``, not shipped yet): the wider
``micro`` preset from scratch on generated volumes, basic shapes and the CT/T1/T2 phantoms, box
episodes mixed with propagation clips; 16000 steps, several CPU hours: run it over several
sessions with ``--stage micro --resume``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from medsam2.config import ModelConfig

ROOT = Path(__file__).resolve().parent.parent

# dataset id -> (name, phantom generator ("ct", "T1", "T2") or "mni", seeds)
DATASETS = {
    900: ("Phantoms", "ct", range(40)),
    902: ("PhantomsCT", "ct", range(120)),
    903: ("PhantomsT1", "T1", range(200, 240)),
    904: ("PhantomsT2", "T2", range(300, 340)),
    905: ("MNI152", "mni", range(1)),
}
# stage -> (config file, dataset ids, run folder, the stage whose final weights it starts from)
STAGES = {
    "1": ("embedded_nano.json", (900,), "embedded_nano", None),
    "2": ("embedded_nano_memory.json", (902,), "embedded_nano_mem", "1"),
    "3": ("embedded_nano_mixed.json", (902, 903, 904, 905), "embedded_nano_mixed", "2"),
    "4": ("embedded_nano_synth.json", (), "embedded_nano_synth", "3"),  # data: the config's synth:...
    # a branch from stage 3: its phantoms plus generated volumes, prompt encoder frozen
    "3b": ("embedded_nano_joint.json", (902, 903, 904), "embedded_nano_joint", "3"),
    # stage 4 fine-tuned with boxes given as a dense mask too (box_mask_prompt): the box skill
    "6": ("embedded_nano_boxmask.json", (), "embedded_nano_boxmask", "4"),  # data: shapes + synth
    # stage 3b with the dense box on its phantoms + generated volumes, then + one-slice shapes
    "7a": ("embedded_nano_track.json", (902, 903, 904), "embedded_nano_track", "3b"),
    "7b": ("embedded_nano_track_box.json", (902, 903, 904), "embedded_nano_track_box", "7a"),
    "7c": ("embedded_nano_track_box2.json", (902, 903, 904), "embedded_nano_track_box2", "7b"),
    "7d": ("embedded_nano_track_box3.json", (902, 903, 904), "embedded_nano_track_box3", "7c"),
    # 7d's box answer alone (one-slice episodes, memory frozen): the model box chaining runs
    "7f": ("embedded_nano_chain.json", (902, 903, 904), "embedded_nano_chain", "7d"),
    # 7f continued: 15000 more one-slice steps of the same recipe (7f's figures still rose at 15000)
    # 7f with corrective clicks: 1-3 clicks on the errors of half of the episodes' answers
    "7h": ("embedded_nano_chain_click.json", (902, 903, 904), "embedded_nano_chain_click", "7f"),
    "7g": ("embedded_nano_chain2.json", (902, 903, 904), "embedded_nano_chain2", "7f"),
    # 7h continued: 10000 more steps of its recipe (7g showed that more one-slice steps still help)
    "7i": ("embedded_nano_chain_click2.json", (902, 903, 904), "embedded_nano_chain_click2", "7h"),
    # 7h continued after corrections on a boxed slice read the box densely (the engine changed)
    "7j": ("embedded_nano_chain_click3.json", (902, 903, 904), "embedded_nano_chain_click3", "7h"),
    # 7j continued with generated "part" targets (a label whose box is a larger structure's, as
    # grey matter's is the brain's): their box-only answer unscored, their clicks-after scored
    "9": ("embedded_nano_chain_parts.json", (902, 903, 904), "embedded_nano_chain_parts", "7j"),
    # 9 continued with three times the parts (about half of the episodes) and twice the rate
    "9b": ("embedded_nano_chain_parts2.json", (902, 903, 904), "embedded_nano_chain_parts2", "9"),
    # 7j with its clicks painted into the dense box too (click_mask_prompt), on 9's kind of data
    "9c": ("embedded_nano_chain_clickmask.json", (902, 903, 904), "embedded_nano_chain_clickmask", "7j"),
    # 9c with generated wholes (a group or the foreground filling its box, as a brain its box):
    # clicks on them add or remove edge pixels (9c took a click to mean a smaller structure)
    "9d": ("embedded_nano_chain_wholes.json", (902, 903, 904), "embedded_nano_chain_wholes", "9c"),
    # 9d's kind of data with fewer wholes, at two thirds of its rate: closer to 9c
    "9e": ("embedded_nano_chain_wholes2.json", (902, 903, 904), "embedded_nano_chain_wholes2", "9c"),
    # One-Prompt training from 7d (its memory carries a mask), image and prompt encoders frozen;
    # stopped at step 500: the fundus twin collapsed as in stage 5 (not shipped)
    "8": ("embedded_nano_track_oneprompt.json", (), "embedded_nano_track_op", "7d"),
    # the wider preset from scratch (its config names the preset); hours long, so not in "all"
    "micro": ("embedded_micro.json", (902, 903, 904), "embedded_micro", None),
}
LONG = {
    "micro",
    "7g",
    "7i",
    "8",
    "9",
    "9b",
    "9d",
}  # stages that "all" leaves out (long, or candidates not shipped)
# stage -> the embedded model its final weights become (medsam2/assets/{name}.safetensors + .json)
SHIPPED = {"3b": "nano", "4": "nano_synth", "6": "nano_box", "7d": "nano_track", "9e": "nano_chain"}
# what a shipped config says beyond the trained one: how its weights run by default, chosen on
# validation (docs/embedded_model.md, "The defaults": nano-track chains boxes through volumes)
SHIPPED_CONFIG: dict[str, dict[str, Any]] = {
    "nano_track": {"tracker": "box-chain"},
    "nano_chain": {"tracker": "box-chain"},
}


def _dataset(data: Path, dataset_id: int) -> Path:
    from medsam2.data.phantoms import ct_phantom, mr_phantom, write_nnunet_dataset

    name, kind, seeds = DATASETS[dataset_id]
    folder = data / f"Dataset{dataset_id:03d}_{name}"
    if folder.is_dir():
        return folder
    if kind == "mni":
        return _mni_dataset(folder)
    cases = [ct_phantom(seed=s) if kind == "ct" else mr_phantom(seed=s, weighting=kind) for s in seeds]
    return write_nnunet_dataset(data, cases, name, dataset_id=dataset_id)


def _mni_dataset(folder: Path) -> Path:
    """nilearn's MNI152 T1 template with its white matter (probability > 0.5) as the one label.
    Its grey matter stays out of training: benchmarks/quality.py measures it as unseen."""
    import SimpleITK as sitk

    try:
        import nilearn
    except ImportError:
        raise SystemExit("stage 3 needs nilearn's MNI152 files: pip install nilearn") from None
    base = Path(nilearn.__file__).parent / "datasets" / "data"
    t1 = sitk.ReadImage(str(base / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"), sitk.sitkFloat32)
    wm = sitk.ReadImage(str(base / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"), sitk.sitkFloat32)
    label = sitk.Cast(wm > 0.5, sitk.sitkUInt8)
    label.CopyInformation(t1)
    tmp = folder.with_name(folder.name + ".tmp")
    for sub in ("imagesTr", "labelsTr"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(t1, str(tmp / "imagesTr" / "MNI152_000_0000.nii.gz"), True)
    sitk.WriteImage(label, str(tmp / "labelsTr" / "MNI152_000.nii.gz"), True)
    spec = {
        "channel_names": {"0": "T1"},
        "labels": {"background": 0, "white_matter": 1},
        "numTraining": 1,
        "file_ending": ".nii.gz",
        "source": "nilearn MNI152 ICBM 2009a (1 mm); label: white matter probability > 0.5",
    }
    (tmp / "dataset.json").write_text(json.dumps(spec, indent=2) + "\n")
    tmp.rename(folder)
    return folder


def _final(run: Path) -> Path:
    """A stage's result: its final weights (the end of the cosine schedule). Validation on a few
    held-out cases is logged to watch the run, too noisy to pick a step by."""
    return run / "model.safetensors"


def run_stage(stage: str, data: Path, runs: Path, resume: bool) -> Path:
    """Train one stage; returns its final weights."""
    from medsam2.data.union import is_generated
    from medsam2.training import TrainConfig, train

    config, dataset_ids, folder, parent = STAGES[stage]
    options = json.loads((ROOT / "configs" / config).read_text())
    if parent is not None:  # starts from the previous stage's result, wherever --runs put it
        options["init"] = str(_final(runs / STAGES[parent][2]))
    generated = [p for p in options.get("data", "").split(",") if is_generated(p)]
    datasets = ",".join([*generated, *(str(_dataset(data, i)) for i in dataset_ids)])
    cfg = TrainConfig.from_dict(options).replace(data=datasets, out=str(runs / folder), progress=True)
    result = train(cfg, resume=resume)
    print(json.dumps({"stage": stage, "best_dice": result.best_dice, "run": str(result.run_dir)}))
    return _final(runs / folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data")
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--stage", choices=(*STAGES, "all"), default="all")
    ap.add_argument("--resume", action="store_true", help="continue the stage's interrupted run")
    args = ap.parse_args()
    stages = [s for s in STAGES if s not in LONG] if args.stage == "all" else [args.stage]
    assets = ROOT / "medsam2" / "assets"
    assets.mkdir(exist_ok=True)
    for stage in stages:
        weights = run_stage(stage, Path(args.data), Path(args.runs), args.resume)
        if stage not in SHIPPED:
            continue
        stem = SHIPPED[stage]
        shutil.copyfile(
            weights, assets / f"{stem}.safetensors"
        )  # copyfile: the package's files keep their modes
        config = ModelConfig.from_json(weights.with_suffix(".json")).replace(**SHIPPED_CONFIG.get(stem, {}))
        (assets / f"{stem}.json").write_text(config.to_json() + "\n")
        print(json.dumps({"stage": stage, "weights": str(weights), "asset": str(assets / stem)}))


if __name__ == "__main__":
    main()
