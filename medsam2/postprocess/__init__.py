"""Postprocessing: per-object logits -> label maps, and per-object statistics."""

from medsam2.postprocess.labels import LabelAccumulator, ObjectStats, combine_objects

__all__ = ["LabelAccumulator", "ObjectStats", "combine_objects"]
