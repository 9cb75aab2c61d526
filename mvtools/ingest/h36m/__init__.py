"""Human3.6M: CDF pose files (:mod:`.cdf`), the raw tree, sub-action table and VideoPose3D npz files, and
``ingest_h36m`` (:mod:`.reader`)."""
