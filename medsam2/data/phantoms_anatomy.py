"""The abdomen-like anatomy shared by the CT and MR phantoms: a tissue map and an exact label map.

Layout (index space, read as LPS with an identity direction): i runs to the patient's left, j to
posterior, k to superior. The body is an axial superellipse filling the field of view; the liver
sits at low i (patient right), the spleen at high i, the kidneys posterior on both sides, the
spine posterior in the midline with the aorta just in front of it. Sizes are fractions of the field
of view (so any shape/spacing gives a full abdomen); vessel and lesion radii are in mm relative to
the in-plane field of view. Every structure draws its own random stream from ``(seed, name)``, so
changing one option (e.g. the number of lesions) leaves the other structures unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medsam2.data.phantoms_labels import (
    AORTA,
    KIDNEY_L,
    KIDNEY_R,
    LESION,
    LESION_TISSUE_BASE,
    LIVER,
    LIVER_VESSELS,
    SPINE,
    SPLEEN,
    Lesion,
    Tissue,
    part_rng,
)
from medsam2.data.phantoms_shapes import Grid, Shape, Slices, bezier, random_wobble, rotation, tube_stamps

__all__ = ["Anatomy", "generate_anatomy"]


@dataclass(frozen=True)
class Anatomy:
    """``tissue`` (uint8, (i, j, k), `Tissue` values or lesion tissues), ``label`` (uint8, same shape,
    `PHANTOM_LABELS` values) and the lesions in the order of their tissue values."""

    tissue: np.ndarray
    label: np.ndarray
    lesions: tuple[Lesion, ...]


class _Canvas:
    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.tissue = np.zeros(grid.shape, np.uint8)
        self.label = np.zeros(grid.shape, np.uint8)

    def paint(
        self,
        sl: Slices,
        mask: np.ndarray,
        tissue: int,
        label: int,
        within: np.ndarray | None = None,
        only: tuple[int, ...] | None = None,
    ) -> None:
        """Set tissue and label where ``mask`` (on sub-box ``sl``), optionally restricted to a full-size
        bool ``within`` and to voxels whose current label is in ``only``."""
        t, lab = self.tissue[sl], self.label[sl]
        m = mask if within is None else mask & within[sl]
        if only is not None:
            m = m & np.isin(lab, only)
        t[m] = tissue
        lab[m] = label


def _jit(rng: np.random.Generator, scale: float, n: int = 3) -> np.ndarray:
    return rng.uniform(-scale, scale, n)


def _body(c: _Canvas, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Body (subcutaneous fat, muscle wall, visceral-fat cavity, paraspinal muscles) -> (body, cavity)."""
    rng = part_rng(seed, "body")
    full: Slices = (slice(0, c.grid.shape[0]), slice(0, c.grid.shape[1]), slice(0, c.grid.shape[2]))
    u, v, w = c.grid.coords(full)
    a, b, e = 0.90 * rng.uniform(0.95, 1.03), 0.74 * rng.uniform(0.93, 1.05), rng.uniform(2.2, 2.8)
    r2 = (np.abs(u / a) ** e + np.abs((v - 0.04) / b) ** e) ** (1.0 / e)
    scale = 1.0 + 0.04 * np.sin(np.pi * rng.uniform(0.5, 1.2) * w + rng.uniform(0, 2 * np.pi))
    r = r2 / scale
    body = r <= 1.0
    c.tissue[body] = Tissue.SUBCUT_FAT
    c.tissue[r <= 0.93] = Tissue.MUSCLE
    cavity = r <= 0.87
    c.tissue[cavity] = Tissue.VISCERAL_FAT
    for side in (-1.0, 1.0):
        centre = np.array([side * 0.17, 0.58, 0.0]) + _jit(rng, 0.02) * [1, 1, 0]
        muscle = Shape(centre, np.array([0.12, 0.10, 5.0]), rotation(side * 0.3), 2.0)
        res = muscle.level(c.grid)
        if res is not None:
            c.paint(res[0], res[1] <= 1.0, Tissue.MUSCLE, 0, within=body)
    return body, cavity


def _bowel(c: _Canvas, seed: int, cavity: np.ndarray) -> None:
    """Unlabelled bowel loops (wall + fluid or gas) in the anterior cavity: distractors."""
    rng = part_rng(seed, "bowel")
    for _ in range(int(rng.integers(4, 8))):
        centre = np.array([rng.uniform(-0.35, 0.5), rng.uniform(-0.6, -0.15), rng.uniform(-0.9, 0.4)])
        semi = np.array([rng.uniform(0.08, 0.14), rng.uniform(0.08, 0.14), rng.uniform(0.15, 0.35)])
        shape = Shape(
            centre,
            semi,
            rotation(rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4)),
            2.0,
            random_wobble(rng, 2, 0.08),
        )
        content = Tissue.BOWEL_GAS if rng.random() < 0.3 else Tissue.BOWEL_FLUID
        res = shape.level(c.grid)
        if res is not None:
            c.paint(res[0], res[1] <= 1.0, Tissue.BOWEL_WALL, 0, within=cavity)
            c.paint(res[0], res[1] <= 0.72, content, 0, within=cavity)


def _organs(c: _Canvas, seed: int, cavity: np.ndarray) -> Shape:
    """Liver (two lobes), spleen and both kidneys (cortex + medulla, hilum notch); returns the main
    liver lobe."""
    rng = part_rng(seed, "liver")
    main = Shape(
        np.array([-0.36, -0.02, 0.14]) + _jit(rng, 0.04) * [1, 1, 2],
        np.array([0.42, 0.47, 0.58]) * rng.uniform(0.9, 1.1, 3),
        rotation(np.radians(15.0 + rng.uniform(-10, 10)), *_jit(rng, 0.15, 2)),
        rng.uniform(2.0, 2.6),
        random_wobble(rng, 3, 0.07),
    )
    left = Shape(
        main.center + np.array([0.40, -0.26, 0.18]) + _jit(rng, 0.04),
        np.array([0.30, 0.15, 0.28]) * rng.uniform(0.9, 1.1, 3),
        rotation(np.radians(-10.0 + rng.uniform(-10, 10))),
        2.0,
        random_wobble(rng, 2, 0.06),
    )
    rng = part_rng(seed, "spleen")
    spleen = Shape(
        np.array([0.52, 0.16, 0.35]) + _jit(rng, 0.04) * [1, 1, 2],
        np.array([0.14, 0.27, 0.30]) * rng.uniform(0.85, 1.15, 3),
        rotation(np.radians(-35.0 + rng.uniform(-10, 10)), *_jit(rng, 0.15, 2)),
        2.0,
        random_wobble(rng, 3, 0.06),
    )
    for shape, tissue, label in (
        (main, Tissue.LIVER, LIVER),
        (left, Tissue.LIVER, LIVER),
        (spleen, Tissue.SPLEEN, SPLEEN),
    ):
        res = shape.level(c.grid)
        if res is not None:
            c.paint(res[0], res[1] <= 1.0, tissue, label, within=cavity)
    rng = part_rng(seed, "kidneys")
    for side, label, w0 in ((-1.0, KIDNEY_R, -0.30), (1.0, KIDNEY_L, -0.18)):
        _kidney(c, rng, side, label, w0, cavity)
    return main


def _kidney(
    c: _Canvas, rng: np.random.Generator, side: float, label: int, w0: float, cavity: np.ndarray
) -> None:
    centre = np.array([side * 0.40, 0.36, w0]) + _jit(rng, 0.03) * [1, 1, 3]
    rot = rotation(np.radians(side * 20.0 + rng.uniform(-8, 8)), *_jit(rng, 0.2, 2))
    kidney = Shape(
        centre, np.array([0.14, 0.17, 0.32]) * rng.uniform(0.9, 1.1, 3), rot, 2.0, random_wobble(rng, 2, 0.04)
    )
    notch = Shape(centre + rot @ np.array([-side * 0.13, -0.02, 0.0]), np.array([0.07, 0.07, 0.12]), rot, 2.0)
    res = kidney.level(c.grid)
    if res is None:
        return
    sl, level = res
    inside = (level <= 1.0) & (notch.level_in(c.grid, sl) > 1.0)
    c.paint(sl, inside, Tissue.KIDNEY_CORTEX, label, within=cavity)
    c.paint(sl, inside & (level <= 0.62), Tissue.KIDNEY_MEDULLA, label, within=cavity)


def _great_vessels(c: _Canvas, seed: int) -> None:
    """IVC (unlabelled) and aorta (label 6): gently curving tubes along k, the aorta tapering caudally."""
    rng = part_rng(seed, "great_vessels")
    w = np.linspace(-1.1, 1.1, 96)
    h = c.grid.inplane_mm
    for u0, v0, r0, tissue, label in (
        (-0.15, 0.17, 0.055, Tissue.IVC, 0),
        (0.08, 0.12, 0.065, Tissue.AORTA, AORTA),
    ):
        fu, fv = rng.uniform(0.6, 1.4, 2)
        pu, pv = rng.uniform(0.0, 2 * np.pi, 2)
        u = u0 + rng.uniform(-0.02, 0.02) + 0.035 * np.sin(np.pi * fu * w + pu)
        v = v0 + rng.uniform(-0.02, 0.02) + 0.025 * np.sin(np.pi * fv * w + pv)
        radii = h * r0 * rng.uniform(0.9, 1.15) * (1.0 + 0.12 * w)
        for sl, mask in tube_stamps(c.grid, c.grid.to_mm(np.stack([u, v, w], axis=1)), radii):
            c.paint(sl, mask, tissue, label)


def _spine(c: _Canvas, seed: int, body: np.ndarray) -> None:
    """Vertebral bodies (cortical rim, cancellous core) separated by discs, and a continuous posterior
    arch (ring around the canal, spinous and transverse processes): label 8, connected along k."""
    rng = part_rng(seed, "spine")
    sl = c.grid.box(np.array([-0.32, 0.18, -2.0]), np.array([0.32, 0.9, 2.0]))
    if sl is None:
        return
    u, v, w = c.grid.coords(sl)
    du = u - 0.02 * np.sin(np.pi * rng.uniform(0.3, 0.8) * w + rng.uniform(0, 2 * np.pi))
    dv = (
        v
        - 0.36
        - rng.uniform(-0.02, 0.02)
        - 0.03 * np.sin(np.pi * rng.uniform(0.3, 0.8) * w + rng.uniform(0, 2 * np.pi))
    )
    vb = (du / 0.12) ** 2 + (dv / 0.10) ** 2
    cv = dv - 0.17
    rc2 = du**2 + cv**2
    canal = rc2 <= 0.05**2
    arch = (
        (rc2 <= 0.09**2)
        | ((np.abs(du) <= 0.025) & (cv >= 0) & (cv <= 0.17))
        | ((np.abs(cv + 0.01) <= 0.025) & (np.abs(du) <= 0.2))
    )
    z_mm = np.arange(sl[2].start, sl[2].stop) * c.grid.spacing[2]
    period = rng.uniform(24.0, 30.0)
    disc = (((z_mm - rng.uniform(0, period)) % period) < 0.22 * period).reshape(1, 1, -1)
    vertebra = (vb <= 1.0) & ~disc
    c.paint(sl, vertebra | (arch & ~canal), Tissue.BONE_CORTICAL, SPINE, within=body)
    c.paint(sl, vertebra & (vb <= 0.64), Tissue.BONE_CANCELLOUS, SPINE, within=body)
    c.paint(sl, (vb <= 1.0) & disc, Tissue.DISC, 0, within=body)
    c.paint(sl, canal, Tissue.CSF, 0, within=body)


def _keep_largest(c: _Canvas, value: int, fill: Tissue = Tissue.VISCERAL_FAT, fill_label: int = 0) -> None:
    """Make label ``value`` one 6-connected component: smaller pieces become ``fill``/``fill_label``."""
    m = c.label == value
    spans = [np.flatnonzero(np.any(m, axis=tuple(a for a in range(3) if a != d))) for d in range(3)]
    if any(s.size == 0 for s in spans):
        return
    sl = tuple(slice(int(s[0]), int(s[-1]) + 1) for s in spans)
    comp, n = ndimage.label(m[sl])
    if n > 1:
        small = (comp != np.argmax(np.bincount(comp.ravel())[1:]) + 1) & (comp > 0)
        c.tissue[sl][small] = fill
        c.label[sl][small] = fill_label


def _liver_vessels(c: _Canvas, seed: int, main: Shape) -> None:
    """A portal-like tree (3-5 curved, tapering branches, each with a side branch) inside the liver."""
    rng = part_rng(seed, "liver_vessels")
    h = c.grid.inplane_mm
    r_min = 0.6 * max(c.grid.spacing)  # thinner tubes would break up between slices
    root = main.center + main.rot @ (main.semi * np.array([0.35, 0.30, -0.25]))
    for _ in range(int(rng.integers(3, 6))):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        tip = main.center + main.rot @ (main.semi * d * rng.uniform(0.55, 0.8))
        mid = (root + tip) / 2 + main.rot @ (main.semi * rng.normal(0.0, 0.15, 3))
        pts = bezier(np.stack([root, mid, tip]), 40)
        radii = np.maximum(np.linspace(0.045, 0.02, 40) * h * rng.uniform(0.85, 1.15), r_min)
        t0 = int(rng.integers(12, 28))
        d2 = d + rng.normal(0.0, 0.6, 3)
        tip2 = main.center + main.rot @ (main.semi * d2 / np.linalg.norm(d2) * rng.uniform(0.5, 0.8))
        side = bezier(np.stack([pts[t0], (pts[t0] + tip2) / 2 + rng.normal(0.0, 0.04, 3), tip2]), 30)
        side_r = np.maximum(np.linspace(radii[t0] * 0.8, 0.017 * h, 30), r_min)
        for p, r in ((pts, radii), (side, side_r)):
            for sl, mask in tube_stamps(c.grid, c.grid.to_mm(p), r):
                c.paint(sl, mask, Tissue.LIVER_VESSEL, LIVER_VESSELS, only=(LIVER,))


def _place_lesion(
    c: _Canvas,
    rng: np.random.Generator,
    main: Shape,
    radii: np.ndarray,
    taken: list[tuple[np.ndarray, float]],
) -> tuple[Slices, np.ndarray, np.ndarray] | None:
    """Find a spot where an ellipsoid of ``radii`` mm lies wholly inside liver parenchyma (clear of its
    vessels and edges) and of the lesions in ``taken``; returns (sub-box, mask, centre in mm) or None."""
    sp = np.asarray(c.grid.spacing)
    gap = 1.5 * float(sp.max())
    for _ in range(40):
        p = rng.normal(size=3)
        p *= 0.6 * rng.uniform() ** (1 / 3) / np.linalg.norm(p)
        cm = c.grid.to_mm(main.center + main.rot @ (main.semi * p))
        if any(np.linalg.norm(cm - o) < radii.max() + ro + gap for o, ro in taken):
            continue
        lo, hi = np.ceil((cm - radii) / sp).astype(int), np.floor((cm + radii) / sp).astype(int) + 1
        if np.any(lo < 0) or np.any(hi > c.grid.shape):
            continue
        sl = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        ax = [
            (((np.arange(lo[d], hi[d]) * sp[d] - cm[d]) / radii[d]) ** 2).astype(np.float32) for d in range(3)
        ]
        mask = ax[0][:, None, None] + ax[1][None, :, None] + ax[2][None, None, :] <= 1.0
        if mask.any() and np.all(c.label[sl][mask] == LIVER):
            return sl, mask, cm
    return None


def _lesions(c: _Canvas, seed: int, main: Shape, n: int) -> tuple[Lesion, ...]:
    """Up to ``n`` non-touching liver lesions, alternately hypo- and hyperdense, radii spread over
    5-17% of the in-plane half field of view (2.6-8.7 mm at the default size)."""
    rng = part_rng(seed, "lesions")
    h = c.grid.inplane_mm
    first = int(rng.integers(2))
    fracs = 0.05 + 0.12 * (rng.permutation(max(n, 1)) + rng.uniform(0, 1, max(n, 1))) / max(n, 1)
    lesions: list[Lesion] = []
    taken: list[tuple[np.ndarray, float]] = []
    for i in range(n):
        hyper = (i + first) % 2 == 1
        contrast = float(rng.uniform(35, 80) if hyper else -rng.uniform(25, 60))
        radii = h * fracs[i] * rng.uniform(0.85, 1.15, 3)
        spot = None
        for shrink in (1.0, 0.8, 0.6):
            spot = _place_lesion(c, rng, main, radii * shrink, taken)
            if spot is not None:
                radii = radii * shrink
                break
        if spot is None:
            continue
        sl, mask, cm = spot
        c.paint(sl, mask, LESION_TISSUE_BASE + len(lesions), LESION)
        taken.append((cm, float(radii.max())))
        centre = cm / np.asarray(c.grid.spacing)
        ci = (float(centre[0]), float(centre[1]), float(centre[2]))
        lesions.append(Lesion(ci, (float(radii[0]), float(radii[1]), float(radii[2])), contrast))
    return tuple(lesions)


def generate_anatomy(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int, n_lesions: int = 4
) -> Anatomy:
    """The anatomy for ``seed`` on a grid of ``shape`` (i, j, k) and ``spacing`` (mm): tissue + label maps."""
    if n_lesions < 0 or n_lesions > 255 - LESION_TISSUE_BASE:
        raise ValueError(f"n_lesions must be between 0 and {255 - LESION_TISSUE_BASE}, got {n_lesions}")
    c = _Canvas(Grid(shape, spacing))
    body, cavity = _body(c, seed)
    _bowel(c, seed, cavity)
    main = _organs(c, seed, cavity)
    _great_vessels(c, seed)
    _spine(c, seed, body)
    for value in (LIVER, SPLEEN, KIDNEY_R, KIDNEY_L):
        _keep_largest(c, value)
    _liver_vessels(c, seed, main)
    _keep_largest(c, LIVER_VESSELS, Tissue.LIVER, LIVER)  # a branch that left and re-entered the liver
    lesions = _lesions(c, seed, main, n_lesions)
    return Anatomy(c.tissue, c.label, lesions)
