"""BVH motion capture: file reader (:mod:`.reader`), kinematics and resampling (:mod:`.kinematics`), joint maps
(:mod:`.joint_maps`) and ``ingest_bvh`` (:mod:`.ingest`)."""
