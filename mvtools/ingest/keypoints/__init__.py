"""``mvtools ingest keypoints``: multi-view 2D keypoint files (OpenPose, COCO results, mmpose, arrays) -> dataset.

Modules: ``formats`` (readers), ``layouts`` (COCO-17 / BODY_25 / COCO-18 / Halpe-26 -> H36M-17), ``people``
(one person per frame), ``intrinsics`` (TOML / OpenCV YAML-XML / JSON / guess), ``ingest`` (``ingest_keypoints``),
``export`` (writers of those formats, for fixtures and benchmarks). See docs/keypoints.md.
"""
