"""Scoring and inference: metrics (:mod:`.metrics`), evaluation of a run on a dataset (:mod:`.evaluation`) and
lifting 2D files to 3D (:mod:`.predict`)."""
