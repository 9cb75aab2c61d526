"""Readers of raw sources (Human3.6M, BVH motion capture, MPI-INF-3DHP), each turning its files into a dataset
directory (:mod:`mvtools.dataset`)."""
