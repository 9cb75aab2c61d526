"""mvtools.calibration: camera extrinsics from 2D joints, bundle adjustment, aniposelib TOML I/O.

Public API (imported lazily, so ``toml_io`` users do not pay for OpenCV/SciPy):
``calibrate_from_joints``, ``import_toml``, ``CalibrationError``, ``write_aniposelib_toml``,
``read_aniposelib_toml``. See docs/calibration.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "calibrate_from_joints": "mvtools.calibration.pipeline",
    "import_toml": "mvtools.calibration.pipeline",
    "format_report": "mvtools.calibration.pipeline",
    "CalibrationError": "mvtools.calibration.views",
    "write_aniposelib_toml": "mvtools.calibration.toml_io",
    "read_aniposelib_toml": "mvtools.calibration.toml_io",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mvtools.calibration' has no attribute {name!r}")
