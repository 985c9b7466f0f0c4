"""`medsam2 serve` with the embedded nano-chain: undo keeps the corrections that remain as they were.

Undo decodes an object's remaining prompts again on a fresh object. A correction of a propagated
slice was decoded from that slice's answer (with box chaining: the box of the chained mask before
the click); decoded again from the click alone, on a fresh object, it answered that slice
otherwise (the test below fails so)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medsam2.web.annotator import Annotator
from medsam2.web.prompts import WorldPrompt


@pytest.fixture(scope="module")
def chain_model():  # noqa: ANN201
    from medsam2 import load_model
    from medsam2.model.embedded import checkpoint_path

    path = checkpoint_path("nano-chain")
    assert path is not None
    return load_model(path)


def test_undo_decodes_the_remaining_corrections_from_what_they_corrected(chain_model) -> None:  # noqa: ANN001
    """Validation CT phantom 8000, the left kidney boxed on its largest axial slice, propagated,
    then a positive click inside the kidney on two propagated slices (the deepest voxel), then
    undo of the second click: the first corrected slice keeps exactly the mask its click gave."""
    from medsam2.data.phantoms import ct_phantom

    ph = ct_phantom(seed=8000)
    vol = ph.volume
    a = Annotator(chain_model, vol, tracker="box-chain")
    assert a.geom.slice_axis == 2
    truth = ph.label == 3

    def world(i: float, j: float, k: float) -> tuple[float, float, float]:
        x, y, z = vol.index_to_world(np.array([i, j, k], float))
        return float(x), float(y), float(z)

    def deepest(k: int) -> tuple[float, float, float]:
        depth = ndimage.distance_transform_edt(np.pad(truth[:, :, k], 1))[1:-1, 1:-1]
        i, j = np.unravel_index(int(np.argmax(depth)), depth.shape)
        return world(float(i), float(j), float(k))

    present = np.flatnonzero(truth.any((0, 1)))
    k = int(truth.sum((0, 1)).argmax())
    i, j = np.nonzero(truth[:, :, k])
    a.add_object(name="kidney")
    box = (world(i.min(), j.min(), k), world(i.max(), j.max(), k))
    a.add_prompt(1, WorldPrompt(box=box, space="lps"))
    a.propagate("both")
    first, last = int(present[1]), int(present[-2])
    for t in (first, last):
        a.add_prompt(1, WorldPrompt(points=(deepest(t),), labels=(1,), space="lps"))
    corrected = a.label_volume()
    assert (corrected[:, :, first] == 1).any()

    a.undo(1)
    after = a.label_volume()
    assert np.array_equal(after[:, :, first], corrected[:, :, first])
    assert np.array_equal(after[:, :, k], corrected[:, :, k])
    assert len(a.objects[1].actions) == 2 and set(a.objects[1].priors) == {1}
