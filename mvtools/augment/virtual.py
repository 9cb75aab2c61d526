"""Virtual cameras placed like a subject's real rig (see docs/augment.md).

Geometry of a rig, all in world mm and degrees:

- *up*: the world axis (+-X, +-Y or +-Z) nearest to the mean image-up direction of the real cameras
  (Z for Human3.6M, Y for MPI-INF-3DHP).
- *capture centre*: the point closest (least squares) to the real cameras' optical axes; when the axes are
  nearly parallel (or there is one camera) the mean root position of the subject's 3D instead.
- per camera: *height* (C . up, mm), *radius* (horizontal distance from the vertical line through the capture
  centre, mm), *azimuth* (degrees about up), *elevation* (degrees above the capture centre seen from it, i.e. the
  downward tilt of a camera that looks at the centre).

Virtual cameras stand at a height and radius within the real rig's ranges, look at the capture centre
(``mvtools.camera.look_at``, no roll), reuse the intrinsics and image size of real camera ``i mod n_real`` (rig
order) and have no lens distortion. Ids are ``virtual-00``, ``virtual-01``, ...
"""

from __future__ import annotations

import numpy as np

from mvtools.camera import Camera, look_at, project_pinhole, tvec_from_center, world_to_camera
from mvtools.rotations import nearest_rotation, rotation_angle_deg

LAYOUTS = ("ring", "random")
#: Smallest eigenvalue of sum(I - d d^T) over the optical axes below which their closest point is ill-defined.
MIN_AXES_CONDITION = 0.1


def virtual_id(i: int) -> str:
    """Id of the i-th virtual camera: ``virtual-00``, ``virtual-01``, ..."""
    return f"virtual-{i:02d}"


def world_up(cams: list[Camera]) -> np.ndarray:
    """Unit world axis (3,) nearest to the mean image-up direction (-y camera axis) of ``cams``."""
    v = -np.sum([np.asarray(c.R)[1] for c in cams], axis=0)
    k = int(np.argmax(np.abs(v)))
    up = np.zeros(3)
    up[k] = np.sign(v[k]) or 1.0
    return up


def horizontal_basis(up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (e1, e2) spanning the horizontal plane, (e1, e2, up) right-handed.

    For up = +Z this is (X, Y), so azimuths are atan2(y, x) as in the Human3.6M notes.
    """
    k = int(np.argmax(np.abs(up)))
    e1 = np.zeros(3)
    e1[(k + 1) % 3] = 1.0
    return e1, np.cross(up, e1)


def capture_centre(cams: list[Camera], fallback: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """World point (3,) mm closest to the optical axes of ``cams`` and how it was found.

    Returns (point, "optical-axes"), or (fallback, "mean-root") when the axes are nearly parallel or there is a
    single camera (smallest eigenvalue of sum(I - d d^T) < MIN_AXES_CONDITION).
    """
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for c in cams:
        d = np.asarray(c.R)[2]
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ c.C
    if len(cams) >= 2 and np.linalg.eigvalsh(A)[0] >= MIN_AXES_CONDITION:
        return np.linalg.solve(A, b), "optical-axes"
    if fallback is None:
        raise ValueError("the real cameras' optical axes do not meet and no fallback centre was given")
    return np.asarray(fallback, float), "mean-root"


def rig_geometry(cams: list[Camera], centre: np.ndarray, up: np.ndarray) -> dict[str, np.ndarray]:
    """Per-camera height (mm), radius (mm), azimuth (deg) and elevation (deg) about ``centre``; arrays (n,)."""
    e1, e2 = horizontal_basis(up)
    C = np.array([c.C for c in cams]).reshape(-1, 3)
    d = C - centre
    x, y = d @ e1, d @ e2
    radius = np.hypot(x, y)
    height = C @ up
    return {
        "height": height,
        "radius": radius,
        "azimuth": np.degrees(np.arctan2(y, x)),
        "elevation": np.degrees(np.arctan2(height - centre @ up, radius)),
    }


def ring_positions(azimuth: np.ndarray, height: np.ndarray, radius: np.ndarray, n: int):
    """Ring layout: n azimuths (deg) spread over the gaps between the real cameras so that all of them form an
    evenly spaced ring (each new camera goes to the gap whose spacing is currently largest); height and radius
    are interpolated linearly between the two real cameras bounding the gap. Returns (az, h, r), each (n,)."""
    order = np.argsort(azimuth, kind="stable")
    az, h, r = azimuth[order], height[order], radius[order]
    m = len(az)
    nxt = np.roll(np.arange(m), -1)
    gap = (az[nxt] - az) % 360.0
    if m == 1:
        gap[:] = 360.0
    count = np.zeros(m, int)
    for _ in range(n):  # n is the number of virtual cameras, not frames
        count[np.argmax(gap / (count + 1))] += 1
    out_az, out_h, out_r = [], [], []
    for g in range(m):
        s = np.arange(1, count[g] + 1) / (count[g] + 1)
        out_az.append(az[g] + s * gap[g])
        out_h.append(h[g] + s * (h[nxt[g]] - h[g]))
        out_r.append(r[g] + s * (r[nxt[g]] - r[g]))
    return (np.concatenate(out_az) % 360.0, np.concatenate(out_h), np.concatenate(out_r))


def azimuth_range(azimuth: np.ndarray) -> tuple[float, float]:
    """(start, width) in degrees of the arc the real cameras span: the full circle unless they all lie within a
    half circle (largest gap > 180 deg), then the arc that covers them. Fewer than two cameras: full circle."""
    if len(azimuth) < 2:
        return 0.0, 360.0
    az = np.sort(np.asarray(azimuth) % 360.0)
    gap = (np.roll(az, -1) - az) % 360.0
    g = int(np.argmax(gap))
    if gap[g] <= 180.0:
        return 0.0, 360.0
    return float(az[(g + 1) % len(az)]), float(360.0 - gap[g])


def random_positions(geom: dict, centre_height: float, n: int, rng: np.random.Generator):
    """Random layout: azimuth uniform over the real rig's arc, elevation uniform within the real elevations,
    radius uniform over the part of the real radius range that keeps the height within the real heights.
    Returns (az deg, h mm, r mm), each (n,)."""
    start, width = azimuth_range(geom["azimuth"])
    az = (start + rng.uniform(0.0, width, n)) % 360.0
    el = rng.uniform(geom["elevation"].min(), geom["elevation"].max(), n)
    rmin, rmax = geom["radius"].min(), geom["radius"].max()
    hmin, hmax = geom["height"].min() - centre_height, geom["height"].max() - centre_height
    tan = np.tan(np.radians(el))
    with np.errstate(divide="ignore"):
        a, b = hmin / tan, hmax / tan
    lo = np.where(tan > 0, a, np.where(tan < 0, b, -np.inf))
    hi = np.where(tan > 0, b, np.where(tan < 0, a, np.inf))
    lo, hi = np.maximum(lo, rmin), np.minimum(hi, rmax)
    hi = np.maximum(hi, lo)  # rounding only: the interval is non-empty for elevations within the real range
    r = lo + rng.uniform(0.0, 1.0, n) * (hi - lo)
    h = centre_height + r * tan
    return az, h, r


def place_virtual_cameras(
    real: list[Camera],
    n: int,
    layout: str = "ring",
    rng: np.random.Generator | None = None,
    fallback_centre: np.ndarray | None = None,
    subject: str | None = None,
) -> tuple[list[Camera], dict]:
    """Place ``n`` virtual cameras around the rig ``real`` (given extrinsics, world mm).

    Returns (cameras, info); info holds the capture centre (mm), how it was found, the up axis and the real
    rig's height / radius (mm) and elevation (deg) ranges. ``rng`` is used by the random layout only.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (expected {' or '.join(LAYOUTS)})")
    if not real:
        raise ValueError("no real cameras to place virtual cameras around")
    up = world_up(real)
    centre, how = capture_centre(real, fallback_centre)
    geom = rig_geometry(real, centre, up)
    info = {
        "capture_centre_mm": centre.tolist(),
        "capture_centre_from": how,
        "up": up.tolist(),
        **{f"{k}_range": [float(v.min()), float(v.max())] for k, v in geom.items() if k != "azimuth"},
        "real_azimuth_deg": geom["azimuth"].tolist(),
    }
    if n <= 0:
        return [], info
    if layout == "ring":
        az, h, r = ring_positions(geom["azimuth"], geom["height"], geom["radius"], n)
    else:
        az, h, r = random_positions(geom, float(centre @ up), n, rng or np.random.default_rng(0))
    e1, e2 = horizontal_basis(up)
    base = centre - (centre @ up) * up
    a = np.radians(az)[:, None]
    C = base + r[:, None] * (np.cos(a) * e1 + np.sin(a) * e2) + h[:, None] * up
    R = look_at(C, centre, up)
    t = tvec_from_center(R, C)
    cams = []
    for i in range(n):
        src = real[i % len(real)]
        cams.append(
            Camera(
                camera=virtual_id(i),
                width=src.width,
                height=src.height,
                fx=src.fx,
                fy=src.fy,
                cx=src.cx,
                cy=src.cy,
                R=R[i],
                t=t[i],
                distortion_model="none",
                subject=subject if subject is not None else src.subject,
                source="virtual",
            )
        )
    return cams, info


def project_virtual(X: np.ndarray, cams: list[Camera]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pinhole views of world joints X (N, J, 3) mm in ``cams`` (V distortion-free cameras).

    Returns camera-frame joints (N, V, J, 3) mm, pixels (N, V, J, 2) and ``ok`` (N, V): every joint finite, in
    front of the camera (z > 0) and inside the image [0, width) x [0, height) px.
    """
    X = np.asarray(X, np.float64)
    R = np.array([c.R for c in cams]).reshape(-1, 3, 3)
    t = np.array([c.t for c in cams]).reshape(-1, 3)
    Xc = np.matmul(X[:, None], np.swapaxes(R, 1, 2)[None]) + t[None, :, None, :]
    intr = np.array([c.intrinsics for c in cams]).reshape(-1, 4)
    size = np.array([[c.width, c.height] for c in cams], float).reshape(-1, 2)
    z = Xc[..., 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = project_pinhole(Xc, intr[None, :, None, :])
        inside = (z[..., 0] > 0) & (uv >= 0).all(-1) & (uv < size[None, :, None, :]).all(-1)
    return Xc, uv, inside.all(-1)


def similarity_to(given: list[Camera], estimated: list[Camera]) -> tuple[float, np.ndarray, np.ndarray, dict]:
    """Similarity ``X_E = s R X_W + T`` that carries the given rig (world W) onto the estimated rig (frame E).

    Cameras are matched by order. R is the chordal mean of R_est_j^T R_given_j; s and T fit the camera centres by
    least squares (s = 1 with a single camera). Returns (s, R (3, 3), T (3,) mm, residuals) with residuals the
    RMS centre misfit (mm) and mean rotation misfit (deg) after alignment.
    """
    Rg = np.array([c.R for c in given])
    Re = np.array([c.R for c in estimated])
    R = nearest_rotation(np.einsum("nji,njk->ik", Re, Rg))
    Cg = np.array([c.C for c in given])
    Ce = np.array([c.C for c in estimated])
    mg, me = Cg.mean(0), Ce.mean(0)
    dg, de = (Cg - mg) @ R.T, Ce - me
    den = float((dg * dg).sum())
    s = float((dg * de).sum()) / den if len(given) > 1 and den > 0 else 1.0
    T = me - s * R @ mg
    res = Ce - (s * Cg @ R.T + T)
    ang = rotation_angle_deg(Rg, Re @ R)  # R_est R vs R_given
    return (
        s,
        R,
        T,
        {"scale": s, "centre_rms_mm": float(np.sqrt((res**2).sum(1).mean())), "rotation_mean_deg": float(ang.mean())},
    )


def map_camera(cam: Camera, s: float, R: np.ndarray, T: np.ndarray) -> Camera:
    """The same physical camera expressed in the frame ``X_E = s R X_W + T`` (centre moved, axes rotated)."""
    R_e = np.asarray(cam.R) @ R.T
    C_e = s * R @ cam.C + T
    return cam.with_extrinsics(R_e, tvec_from_center(R_e, C_e))


def camera_frame(X: np.ndarray, cams: list[Camera]) -> np.ndarray:
    """World joints (N, J, 3) mm in the frames of ``cams``: (N, V, J, 3) mm."""
    return np.stack([world_to_camera(np.asarray(X, np.float64), c.R, c.t) for c in cams], axis=1)
