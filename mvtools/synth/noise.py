"""A 2D keypoint detector noise model (shared by ``synth`` and ``ingest bvh``).

Given ground-truth 3D joints (17-joint layout, world mm) and a camera, :func:`simulate_detections` returns what
a per-frame 2D detector such as CPN would report in the camera's (distorted) image:

- Gaussian pixel noise per joint with std ``std_px * joint_scale[j]`` at ``ref_depth_mm``, scaled by
  ``ref_depth_mm / depth`` (farther people are smaller in the image);
- temporally correlated: an AR(1) process per joint and axis with correlation time ``corr_frames``
  (lag-1 autocorrelation ``exp(-1 / corr_frames)``; frame counts refer to ``ref_fps`` and are rescaled to the
  sequence's frame rate);
- ``occluded_scale`` times larger on self-occluded joints (:func:`occlusion_mask`: a limb capsule, the head
  or the torso closer to the camera covers the joint in the image);
- rare gross outliers (rate ``outlier_prob`` per joint and frame, events lasting ``outlier_frames`` frames on
  average, displacement ``outlier_px`` x U(0.5, 1.5) px in a random direction);
- left/right swaps of a whole limb pair (arms or legs) at a rate ``swap_prob`` per frame and pair, lasting
  ``swap_frames`` frames on average;
- a confidence per joint like a heatmap maximum:
  ``conf = conf_max * occluded_conf**occ * exp(-err^2 / (2 s^2)) + N(0, conf_jitter)``, clipped to [0, 1],
  where ``err`` is the actual error (px) and ``s = conf_sigma_px * ref_depth_mm / depth``;
- detections are clipped to the image; a joint whose true projection is outside the image (or behind the
  camera) gets confidence 0.

All randomness comes from the ``rng`` argument, vectorised over frames. Parameters: docs/synthetic.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources

import numpy as np
from scipy.signal import lfilter

from mvtools.camera import Camera, project_camera_frame, world_to_camera
from mvtools.io import read_json, write_json_atomic
from mvtools.skeleton import NUM_JOINTS

#: Limb pairs that a detector can swap: (left joints, right joints) in the 17-joint layout.
SWAP_GROUPS = (([4, 5, 6], [1, 2, 3]), ([11, 12, 13], [14, 15, 16]))


@dataclass
class NoiseParams:
    """Detector noise parameters (units in the field names / comments)."""

    std_px: float = 0.0  # noise std per image axis at ref_depth_mm, px
    joint_scale: list = field(default_factory=lambda: [1.0] * NUM_JOINTS)  # per-joint std multiplier (17)
    ref_depth_mm: float = 5000.0  # depth at which std_px applies, mm
    corr_frames: float = 0.0  # AR(1) correlation time, frames (0 = white noise)
    occluded_scale: float = 1.0  # std multiplier on self-occluded joints
    outlier_prob: float = 0.0  # fraction of joint-frames that are gross outliers
    outlier_px: float = 0.0  # typical outlier displacement, px (drawn from U(0.5, 1.5) x this)
    outlier_frames: float = 1.0  # mean outlier duration, frames
    swap_prob: float = 0.0  # fraction of frames with a left/right limb swap, per limb pair
    swap_frames: float = 1.0  # mean swap duration, frames
    conf_max: float = 1.0  # confidence of a perfect, visible detection (0..1)
    conf_sigma_px: float = 1e9  # error at which confidence falls to exp(-1/2) of conf_max, px at ref depth
    conf_jitter: float = 0.0  # std of additive confidence noise
    occluded_conf: float = 1.0  # confidence multiplier on self-occluded joints
    ref_fps: float = 50.0  # frame rate (Hz) that corr_frames, outlier_frames, swap_frames refer to

    def __post_init__(self):
        self.joint_scale = [float(v) for v in self.joint_scale]
        self.validate()

    def validate(self, source: str = "NoiseParams") -> None:
        """Raise ValueError naming ``source`` and the field when a parameter is out of range."""

        def bad(name, why):
            raise ValueError(f"{source}: noise parameter {name}={getattr(self, name)!r} {why}")

        if len(self.joint_scale) != NUM_JOINTS or min(self.joint_scale) < 0:
            bad("joint_scale", f"must be {NUM_JOINTS} non-negative multipliers")
        for name in ("std_px", "corr_frames", "outlier_px", "conf_jitter"):
            if not getattr(self, name) >= 0:
                bad(name, "must be >= 0")
        for name in ("ref_depth_mm", "conf_sigma_px", "occluded_scale", "ref_fps"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        for name in ("outlier_prob", "swap_prob", "conf_max", "occluded_conf"):
            if not 0 <= getattr(self, name) <= 1:
                bad(name, "must be in [0, 1]")
        for name in ("outlier_frames", "swap_frames"):
            if not getattr(self, name) >= 1:
                bad(name, "must be >= 1 (frames)")

    # ------------------------------------------------------------------ constructors / IO
    @classmethod
    def none(cls) -> NoiseParams:
        """No noise: exact projections, confidence 1."""
        return cls()

    @classmethod
    def realistic(cls) -> NoiseParams:
        """CPN-like detections on H36M (a few px), from mvtools/data/noise_realistic.json."""
        text = resources.files("mvtools").joinpath("data/noise_realistic.json").read_text()
        return cls.from_dict(json.loads(text), "mvtools/data/noise_realistic.json")

    @classmethod
    def from_dict(cls, d: dict, source: str = "noise parameters") -> NoiseParams:
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a JSON object of noise parameters")
        d = {k: v for k, v in d.items() if not k.startswith("_")}  # "_comment" keys are documentation
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{source}: unknown noise parameter(s) {unknown} (known: {sorted(known)})")
        try:
            p = cls(**d)
        except (TypeError, ValueError) as e:
            if str(e).startswith(source):
                raise
            raise ValueError(f"{source}: {e}") from None
        p.validate(source)
        return p

    @classmethod
    def from_json(cls, path) -> NoiseParams:
        return cls.from_dict(read_json(path, "noise parameters"), str(path))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, path) -> None:
        write_json_atomic(path, self.to_dict())

    @property
    def is_none(self) -> bool:
        return self.to_dict() == NoiseParams().to_dict()


def resolve_noise(spec) -> NoiseParams | None:
    """``None``/"none" -> None, "realistic" -> realistic(), a path -> from_json, a NoiseParams -> itself."""
    if spec is None or isinstance(spec, NoiseParams):
        return spec
    if str(spec) == "none":
        return None
    if str(spec) == "realistic":
        return NoiseParams.realistic()
    return NoiseParams.from_json(spec)


# ----------------------------------------------------------------------------- occlusion
#: Body parts as capsules (joint a, joint b, radius mm) in the 17-joint layout.
CAPSULES = (
    (1, 2, 75.0),
    (2, 3, 55.0),
    (4, 5, 75.0),
    (5, 6, 55.0),  # thighs, shins
    (11, 12, 50.0),
    (12, 13, 40.0),
    (14, 15, 50.0),
    (15, 16, 40.0),  # upper arms, forearms
    (9, 10, 95.0),  # head
)
_TORSO = (4, 1, 14, 11)  # left hip, right hip, right shoulder, left shoulder
_TORSO_JOINTS = (0, 1, 4, 7, 8, 11, 14)
#: Joints a capsule never hides besides its own: internal points that its radius reaches at the attachment.
_INTERNAL = {(1, 2): (0,), (4, 5): (0,), (9, 10): (8,)}
_DEPTH_MARGIN = 40.0  # the occluder must be this much closer than the joint, mm


def occlusion_mask(joints_cam: np.ndarray) -> np.ndarray:
    """Self-occlusion (T, 17) bool from camera-frame joints (T, 17, 3) mm (OpenCV, z forward).

    A joint is occluded when, in the image, it lies inside a body-part capsule (thighs, shins, upper arms,
    forearms, head; radius projected at the capsule's depth) or inside the torso quadrilateral (hips and
    shoulders), and that part is at least 40 mm closer to the camera there. A part never hides its own joints
    (nor the pelvis behind a thigh root or the thorax behind the head).
    """
    X = np.asarray(joints_cam, np.float64)
    T = X.shape[0]
    z = np.maximum(X[..., 2], 1.0)
    uv = X[..., :2] / z[..., None]  # normalised image coords (T, 17, 2)
    occ = np.zeros((T, NUM_JOINTS), bool)
    for a, b, r in CAPSULES:
        A, B = uv[:, a, None, :], uv[:, b, None, :]  # (T, 1, 2)
        AB = B - A
        s = ((uv - A) * AB).sum(-1) / np.maximum((AB * AB).sum(-1), 1e-12)
        s = np.clip(s, 0.0, 1.0)  # (T, 17)
        closest = A + s[..., None] * AB
        zc = z[:, a, None] + s * (z[:, b, None] - z[:, a, None])  # capsule axis depth there
        d = np.linalg.norm(uv - closest, axis=-1)
        hit = (d < r / zc) & (zc + _DEPTH_MARGIN < z)
        hit[:, [a, b]] = False
        hit[:, list(_INTERNAL.get((a, b), ()))] = False
        occ |= hit
    # torso: two triangles of the hip/shoulder quadrilateral, depth interpolated barycentrically
    for tri in ((_TORSO[0], _TORSO[1], _TORSO[2]), (_TORSO[0], _TORSO[2], _TORSO[3])):
        P0, P1, P2 = (uv[:, k, None, :] for k in tri)
        v0, v1, v2 = P1 - P0, P2 - P0, uv - P0
        den = v0[..., 0] * v1[..., 1] - v0[..., 1] * v1[..., 0]
        den = np.where(np.abs(den) < 1e-12, 1e-12, den)
        l1 = (v2[..., 0] * v1[..., 1] - v2[..., 1] * v1[..., 0]) / den
        l2 = (v0[..., 0] * v2[..., 1] - v0[..., 1] * v2[..., 0]) / den
        l0 = 1 - l1 - l2
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        zt = l0 * z[:, tri[0], None] + l1 * z[:, tri[1], None] + l2 * z[:, tri[2], None]
        hit = inside & (zt + _DEPTH_MARGIN < z)
        hit[:, list(_TORSO_JOINTS)] = False
        occ |= hit
    return occ


# ----------------------------------------------------------------------------- random processes
def _ar1(rng, shape, corr_frames: float) -> np.ndarray:
    """Stationary AR(1) noise with unit variance along axis 0; lag-1 autocorrelation exp(-1/corr_frames)."""
    w = rng.standard_normal(shape)
    if corr_frames <= 0 or shape[0] < 2:
        return w
    a = float(np.exp(-1.0 / corr_frames))
    w[0] /= np.sqrt(1 - a * a)  # start in the stationary distribution
    return lfilter([np.sqrt(1 - a * a)], [1.0, -a], w, axis=0)


def _events(rng, shape, rate: float, mean_frames: float) -> np.ndarray:
    """Boolean (T, ...) on-periods: starts ~ Bernoulli, durations ~ geometric(mean_frames); on-fraction ~ rate."""
    T = shape[0]
    if rate <= 0 or T == 0:
        return np.zeros(shape, bool)
    # starts ~ Bernoulli(p) per frame: a frame is off with probability ~exp(-p * mean_frames)
    p_start = min(1.0, -np.log1p(-min(rate, 0.999)) / mean_frames)
    start = rng.random(shape) < p_start
    dur = rng.geometric(1.0 / mean_frames, size=shape)
    t = np.arange(T).reshape((T,) + (1,) * (len(shape) - 1))
    end = np.where(start, t + dur, 0)
    return np.maximum.accumulate(end, axis=0) > t


# ----------------------------------------------------------------------------- detections
def simulate_detections(
    joints3d_world: np.ndarray, cam: Camera, params: NoiseParams | None, rng: np.random.Generator, fps: float = 50.0
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated detector output for world joints (T, 17, 3) mm seen by ``cam``.

    Returns ``uv`` (T, 17, 2) float64 px in the camera's distorted image and ``conf`` (T, 17) float32 in
    [0, 1]. With ``NoiseParams.none()`` (or None) ``uv`` is exactly ``mvtools.camera.project`` and conf is 1.
    ``fps`` (Hz) is the frame rate of the sequence: durations given in frames at ``params.ref_fps`` are
    rescaled by ``fps / ref_fps`` so they keep their length in seconds.
    """
    X = np.asarray(joints3d_world, np.float64)
    if X.ndim != 3 or X.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints3d_world must be (T, {NUM_JOINTS}, 3), got {X.shape}")
    Xc = world_to_camera(X, cam.R, cam.t)
    uv_true = project_camera_frame(Xc, cam)
    T = X.shape[0]
    if params is None or params.is_none:
        return uv_true, np.ones((T, NUM_JOINTS), np.float32)
    p = params
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    k = fps / p.ref_fps  # frames at fps per frame at ref_fps
    depth = np.maximum(Xc[..., 2], 1.0)
    scale = p.ref_depth_mm / depth  # (T, 17) image scale vs reference
    occ = occlusion_mask(Xc)

    # left/right swaps: the detector reports the mirrored limb's true position
    src = np.broadcast_to(np.arange(NUM_JOINTS), (T, NUM_JOINTS)).copy()
    if p.swap_prob > 0:
        sw = _events(rng, (T, len(SWAP_GROUPS)), p.swap_prob, max(1.0, p.swap_frames * k))
        for g, (left, right) in enumerate(SWAP_GROUPS):
            rows = sw[:, g]
            src[np.ix_(rows, left)] = right
            src[np.ix_(rows, right)] = left
    rows = np.arange(T)[:, None]
    uv = uv_true[rows, src]

    std = p.std_px * np.asarray(p.joint_scale)[None, :] * scale * np.where(occ, p.occluded_scale, 1.0)
    uv = uv + _ar1(rng, (T, NUM_JOINTS, 2), p.corr_frames * k) * std[..., None]

    if p.outlier_prob > 0 and p.outlier_px > 0:
        out = _events(rng, (T, NUM_JOINTS), p.outlier_prob, max(1.0, p.outlier_frames * k))
        ang = rng.uniform(0, 2 * np.pi, (T, NUM_JOINTS))
        mag = p.outlier_px * rng.uniform(0.5, 1.5, (T, NUM_JOINTS))
        # one displacement per event: hold the value drawn at the event's first frame
        first = out & ~np.concatenate([np.zeros((1, NUM_JOINTS), bool), out[:-1]])
        idx = np.where(first, np.arange(T)[:, None], 0)
        idx = np.maximum.accumulate(idx, axis=0)
        ang, mag = ang[idx, np.arange(NUM_JOINTS)], mag[idx, np.arange(NUM_JOINTS)]
        disp = np.stack([np.cos(ang), np.sin(ang)], -1) * mag[..., None]
        uv = uv + np.where(out[..., None], disp, 0.0)

    # a detector only reports points inside the image; a joint whose true projection is outside gets conf 0
    size = np.array([cam.width, cam.height], np.float64)
    uv = np.clip(uv, 0.0, size - 1.0)
    outside = ((uv_true < 0) | (uv_true > size - 1.0)).any(-1) | (Xc[..., 2] <= 0)
    err = np.linalg.norm(uv - uv_true, axis=-1)
    s = p.conf_sigma_px * scale
    conf = p.conf_max * np.where(occ, p.occluded_conf, 1.0) * np.exp(-0.5 * (err / s) ** 2)
    if p.conf_jitter > 0:
        conf = conf + rng.normal(0.0, p.conf_jitter, conf.shape)
    conf[outside] = 0.0
    return uv, np.clip(conf, 0.0, 1.0).astype(np.float32)
