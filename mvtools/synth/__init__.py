"""Synthetic data: procedural motion (:mod:`.motion`), the detector noise model (:mod:`.noise`), a dataset
directly (:mod:`.dataset`, ``synth dataset``) and a raw Human3.6M-layout tree (:mod:`.h36m`, ``synth h36m``)."""
