"""Time `ingest_3dhp` on full-size synthetic 3DHP files: S2 (6502 + 6081 frames, 14 camera cells, float64 like
the real annot.mat) and TS1 (6151 frames) + TS5 (320).

Usage: python bench/3dhp.py [WORK_DIR]   (default: a directory under the system temp dir; fixtures are reused)
"""

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mvtools.ingest.mpi3dhp import ingest_3dhp
from mvtools.synth.mpi3dhp import rig14, write_test_sequence, write_train_sequence

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "mvtools-bench-3dhp") / "root"
if not (root / "S2").exists():
    rng = np.random.default_rng(0)
    cams = rig14(rng)
    t = time.perf_counter()
    for q, n in ((1, 6502), (2, 6081)):
        write_train_sequence(root / "S2" / f"Seq{q}", n, rng, cams)
    write_test_sequence(root / "mpi_inf_3dhp_test_set" / "TS1", 6151, rng)
    write_test_sequence(root / "mpi_inf_3dhp_test_set" / "TS5", 320, rng, outdoor=True)
    print(
        f"fixture written in {time.perf_counter() - t:.1f} s;",
        " ".join(f"{p.relative_to(root)}={p.stat().st_size / 1e6:.0f}MB" for p in sorted(root.rglob("*.mat"))),
    )
for cams, label in (((0, 2, 4, 7, 8), "chest5"), (tuple(range(14)), "all14")):
    t = time.perf_counter()
    s = ingest_3dhp(root, root.parent / f"ds_{label}", split="both", cameras=cams)
    dt = time.perf_counter() - t
    n3, n2 = s["rows"]["poses3d"], s["rows"]["poses2d"]["gt"]
    print(f"{label}: {dt:.2f} s, {n3} 3D rows, {n2} 2D rows -> {n3 / dt:,.0f} frames/s, {n2 / dt:,.0f} 2D rows/s")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
