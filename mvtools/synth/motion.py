"""Procedural, anatomically plausible human motion on the raw 32-joint Human3.6M skeleton.

A subject is a :class:`Body` (constant bone lengths, mm). A motion is a smooth sequence of joint angles
(degrees, clipped to joint limits) built from activity-specific key poses held and blended over time, a gait
cycle while the person walks, small "alive" fluctuations, and a root path (walking paths inside the H36M
capture area, within ~2 m of the origin). Forward kinematics is vectorised over frames (one loop over the 32
joints); the root height puts the lowest point of the feet on the floor (z = 0).

Frames: world is Z up, millimetres. The body frame (rest pose, all local rotations identity) has
x forward, y to the person's left, z up; the root yaw turns it about world z.

Public API: :func:`random_body`, :func:`generate_motion`, :data:`ACTIVITIES`, :data:`H36M_ACTION_TO_ACTIVITY`,
:func:`forward_kinematics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter1d

from mvtools.rotations import axis_rotation, rotate_xy
from mvtools.skeleton import H36M32_PARENTS, chain_kinematics

# ----------------------------------------------------------------------------- skeleton geometry
#: Rest-pose offsets of each raw joint from its parent (mm, body frame: x forward, y left, z up), for a
#: reference adult; duplicated joints of the real files (11=0, 16=24=13, 20=19, 23=22, 28=27, 31=30) have
#: zero offsets or repeat their sibling's offset.
_REF_OFFSETS = np.array(
    [
        [0, 0, 0],  # 0 Hips
        [0, -130, -10],  # 1 RightUpLeg (hip joint)
        [0, 0, -445],  # 2 RightLeg (knee)
        [0, 0, -440],  # 3 RightFoot (ankle)
        [135, 0, -55],  # 4 RightToeBase
        [65, 0, -10],  # 5 RightToeSite
        [0, 130, -10],  # 6 LeftUpLeg
        [0, 0, -445],  # 7 LeftLeg
        [0, 0, -440],  # 8 LeftFoot
        [135, 0, -55],  # 9 LeftToeBase
        [65, 0, -10],  # 10 LeftToeSite
        [0, 0, 0],  # 11 Spine (= Hips in the real files)
        [10, 0, 235],  # 12 Spine1
        [-5, 0, 250],  # 13 Neck (thorax)
        [60, 0, 100],  # 14 Head (nose level)
        [-40, 0, 120],  # 15 HeadSite (head top)
        [-5, 0, 250],  # 16 LeftShoulder (= Neck)
        [-10, 150, -25],  # 17 LeftArm (shoulder joint)
        [0, 0, -280],  # 18 LeftForeArm (elbow)
        [0, 0, -250],  # 19 LeftHand (wrist)
        [0, 0, 0],  # 20 LeftHandThumb (= LeftHand)
        [35, 0, -45],  # 21 LeftThumbSite
        [0, 0, -95],  # 22 L_Wrist_End
        [0, 0, 0],  # 23 LeftWristSite (= L_Wrist_End)
        [-5, 0, 250],  # 24 RightShoulder (= Neck)
        [-10, -150, -25],  # 25 RightArm
        [0, 0, -280],  # 26 RightForeArm
        [0, 0, -250],  # 27 RightHand
        [0, 0, 0],  # 28 RightHandThumb
        [35, 0, -45],  # 29 RightThumbSite
        [0, 0, -95],  # 30 R_Wrist_End
        [0, 0, 0],  # 31 RightWristSite
    ],
    dtype=np.float64,
)

#: Joints whose rest offset is a duplicate: joint -> joint it coincides with.
DUPLICATE_JOINTS = {11: 0, 16: 13, 24: 13, 20: 19, 23: 22, 28: 27, 31: 30}
#: (left, right) raw index pairs that mirror each other.
_MIRROR_PAIRS = [(6, 1), (7, 2), (8, 3), (9, 4), (10, 5)] + [(16 + i, 24 + i) for i in range(8)]
#: Foot points used for floor contact and their sole clearance in the reference body (mm):
#: ankle, toe base, toe tip of each foot.
_CONTACT = np.array([3, 4, 5, 8, 9, 10])
_REF_CLEARANCE = np.array([80.0, 25.0, 15.0, 80.0, 25.0, 15.0])
_REF_HEIGHT = 80.0 + 440 + 445 + 10 + 235 + 250 + 105 + 115  # floor to head top in the rest pose, mm


@dataclass(frozen=True)
class Body:
    """One subject: rest offsets (32, 3) mm in the body frame, stature (mm) and foot sole clearances (6,) mm."""

    offsets: np.ndarray
    height_mm: float
    clearance: np.ndarray

    @property
    def femur_mm(self) -> float:
        return float(np.linalg.norm(self.offsets[2]))

    @property
    def leg_mm(self) -> float:
        """Hip-to-floor length of a straight leg (mm)."""
        return float(-self.offsets[[1, 2, 3], 2].sum() + self.clearance[0])


def random_body(rng: np.random.Generator) -> Body:
    """A random adult: stature 1.55-1.95 m, per-segment proportions jittered ~3 %, left/right symmetric.

    The femur stays within 380-500 mm.
    """
    height = float(np.clip(rng.normal(1720.0, 90.0), 1550.0, 1950.0))
    s = height / _REF_HEIGHT
    jit = lambda sd=0.03: float(np.clip(1 + rng.normal(0, sd), 1 - 2.5 * sd, 1 + 2.5 * sd))  # noqa: E731
    seg = {  # per-segment scale factors, shared by left and right
        "pelvis": jit(0.05),
        "femur": jit(),
        "tibia": jit(),
        "foot": jit(),
        "spine": jit(),
        "chest": jit(),
        "neck": jit(),
        "head": jit(0.02),
        "clav": jit(0.05),
        "humerus": jit(),
        "radius": jit(),
        "hand": jit(),
    }
    femur = np.clip(445.0 * s * seg["femur"], 380.0, 500.0)
    seg["femur"] = femur / (445.0 * s)
    which = {
        1: "pelvis",
        2: "femur",
        3: "tibia",
        4: "foot",
        5: "foot",
        12: "spine",
        13: "chest",
        14: "neck",
        15: "head",
        17: "clav",
        18: "humerus",
        19: "radius",
        21: "hand",
        22: "hand",
    }
    off = _REF_OFFSETS * s
    for j, name in which.items():
        off[j] *= seg[name]
    for left, right in _MIRROR_PAIRS:  # mirror the left side from the (scaled) right side and vice versa
        if right in which and left not in which:
            off[left] = off[right] * [1, -1, 1]
        elif left in which and right not in which:
            off[right] = off[left] * [1, -1, 1]
    for j, k in ((16, 13), (24, 13)):
        off[j] = off[k]
    clearance = _REF_CLEARANCE * s * seg["foot"]
    stature = clearance[0] - off[[1, 2, 3], 2].sum() + off[[12, 13, 14, 15], 2].sum()
    return Body(offsets=off, height_mm=float(stature), clearance=clearance)


# ----------------------------------------------------------------------------- rotations
def _zyx(z_deg, y_deg, x_deg):
    """Rz @ Ry @ Rx from angles in degrees (T,) -> (T, 3, 3)."""
    return axis_rotation("Z", z_deg) @ axis_rotation("Y", y_deg) @ axis_rotation("X", x_deg)


def _limb(y_deg, x_deg, z_deg):
    """Ball joint of a limb hanging along -z: Ry (flexion) @ Rx (abduction) @ Rz (twist about the bone)."""
    return axis_rotation("Y", y_deg) @ axis_rotation("X", x_deg) @ axis_rotation("Z", z_deg)


def forward_kinematics(local_rot: np.ndarray, offsets: np.ndarray, root_pos: np.ndarray) -> np.ndarray:
    """Joint positions (T, 32, 3) mm from local rotations (T, 32, 3, 3), rest offsets (32, 3) mm and root
    positions (T, 3) mm. ``local_rot[:, 0]`` is the root's global rotation. Vectorised over frames."""
    trans = np.broadcast_to(np.asarray(offsets, dtype=np.float64), local_rot.shape[:1] + offsets.shape).copy()
    trans[:, 0] = root_pos
    return chain_kinematics(np.asarray(H36M32_PARENTS), local_rot, trans)


# ----------------------------------------------------------------------------- joint-angle channels
#: Angle channels (degrees). Anatomical signs: flex > 0 forward/bending, abd > 0 away from the midline,
#: twist > 0 internal rotation; spine/neck lat > 0 bends to the left, twist > 0 turns to the left.
_SIDE_CH = [
    "hip_flex",
    "hip_abd",
    "hip_twist",
    "knee",
    "ankle",
    "clav",
    "sh_flex",
    "sh_abd",
    "sh_twist",
    "elbow",
    "wrist",
]
CHANNELS = (
    ["pelvis_pitch", "pelvis_roll", "spine_flex", "spine_lat", "spine_twist", "neck_flex", "neck_lat", "neck_twist"]
    + [f"l_{c}" for c in _SIDE_CH]
    + [f"r_{c}" for c in _SIDE_CH]
)
_CI = {c: i for i, c in enumerate(CHANNELS)}

_LIMITS_SIDE = {  # degrees
    "hip_flex": (-30, 125),
    "hip_abd": (-30, 45),
    "hip_twist": (-35, 35),
    "knee": (0, 150),
    "ankle": (-35, 40),
    "clav": (-10, 25),
    "sh_flex": (-55, 175),
    "sh_abd": (-15, 170),
    "sh_twist": (-70, 80),
    "elbow": (0, 150),
    "wrist": (-60, 60),
}
_LIMITS = {
    "pelvis_pitch": (-20, 35),
    "pelvis_roll": (-12, 12),
    "spine_flex": (-25, 70),
    "spine_lat": (-30, 30),
    "spine_twist": (-40, 40),
    "neck_flex": (-40, 50),
    "neck_lat": (-30, 30),
    "neck_twist": (-70, 70),
}
_LIMITS.update({f"{s}_{c}": v for c, v in _LIMITS_SIDE.items() for s in "lr"})
LIMITS = np.array([_LIMITS[c] for c in CHANNELS], dtype=np.float64)  # (C, 2) degrees

_NEUTRAL = {
    "l_sh_abd": 8,
    "r_sh_abd": 8,
    "l_elbow": 12,
    "r_elbow": 12,
    "l_knee": 3,
    "r_knee": 3,
    "l_hip_flex": 2,
    "r_hip_flex": 2,
    "spine_flex": 2,
}


def _vec(d: dict) -> np.ndarray:
    v = np.zeros(len(CHANNELS))
    for k, val in d.items():
        v[_CI[k]] = val
    return v


def _channels_to_local(ch: np.ndarray, yaw_deg: np.ndarray) -> np.ndarray:
    """Channels (T, C) degrees + root yaw (T,) degrees -> local rotations (T, 32, 3, 3)."""
    T = ch.shape[0]
    g = lambda name: ch[:, _CI[name]]  # noqa: E731
    zero = np.zeros(T)
    R = np.broadcast_to(np.eye(3), (T, 32, 3, 3)).copy()
    R[:, 0] = _zyx(yaw_deg, g("pelvis_pitch"), g("pelvis_roll"))
    # spine: 40 % at Spine (11), 60 % at Spine1 (12); neck: 60 % at Neck (13), 40 % at Head (14)
    for j, w in ((11, 0.4), (12, 0.6)):
        R[:, j] = _zyx(w * g("spine_twist"), w * g("spine_flex"), -w * g("spine_lat"))
    for j, w in ((13, 0.6), (14, 0.4)):
        R[:, j] = _zyx(w * g("neck_twist"), w * g("neck_flex"), -w * g("neck_lat"))
    for side, sgn, hip, clav in (("l", 1.0, 6, 16), ("r", -1.0, 1, 24)):
        c = lambda name, side=side: g(f"{side}_{name}")  # noqa: E731
        R[:, hip] = (
            axis_rotation("X", (sgn * c("hip_abd")))
            @ axis_rotation("Y", (-c("hip_flex")))
            @ axis_rotation("Z", (-sgn * c("hip_twist")))
        )
        R[:, hip + 1] = axis_rotation("Y", (c("knee")))
        R[:, hip + 2] = axis_rotation("Y", (-c("ankle")))
        R[:, clav] = axis_rotation("X", (-sgn * c("clav")))
        R[:, clav + 1] = _limb(-c("sh_flex"), sgn * c("sh_abd"), -sgn * c("sh_twist"))
        R[:, clav + 2] = axis_rotation("Y", (-c("elbow")))
        R[:, clav + 3] = _zyx(zero, -c("wrist"), zero)
    return R


# ----------------------------------------------------------------------------- key poses
# Each key pose: channel deltas from neutral (degrees). "side" poses are written for the left arm/leg and
# mirrored to the right at random. Optional "osc": {channel: (amplitude deg, frequency Hz)}.
_POSES = {
    "neutral": {},
    "weight_shift": {"pelvis_roll": 5, "l_hip_abd": 4, "r_hip_abd": -4, "r_knee": 12, "spine_lat": -4},
    "hands_front": {"l_sh_flex": 25, "r_sh_flex": 25, "l_elbow": 70, "r_elbow": 70, "l_sh_twist": 25, "r_sh_twist": 25},
    "arms_crossed": {
        "l_sh_flex": 25,
        "r_sh_flex": 25,
        "l_sh_twist": 60,
        "r_sh_twist": 60,
        "l_elbow": 105,
        "r_elbow": 105,
        "l_sh_abd": 15,
        "r_sh_abd": 15,
    },
    "hands_on_hips": {
        "l_sh_abd": 45,
        "r_sh_abd": 45,
        "l_sh_flex": -15,
        "r_sh_flex": -15,
        "l_elbow": 100,
        "r_elbow": 100,
        "l_sh_twist": 40,
        "r_sh_twist": 40,
    },
    "hands_back": {
        "l_sh_flex": -35,
        "r_sh_flex": -35,
        "l_elbow": 40,
        "r_elbow": 40,
        "l_sh_abd": -5,
        "r_sh_abd": -5,
        "l_sh_twist": 30,
        "r_sh_twist": 30,
    },
    "point": {"side": True, "l_sh_flex": 80, "l_sh_abd": 25, "l_elbow": 8, "neck_twist": 25, "spine_twist": 10},
    "explain": {
        "l_sh_flex": 35,
        "r_sh_flex": 30,
        "l_sh_abd": 25,
        "r_sh_abd": 20,
        "l_elbow": 85,
        "r_elbow": 75,
        "l_sh_twist": -10,
        "r_sh_twist": -5,
        "osc": {"l_elbow": (15, 0.8), "r_sh_abd": (10, 0.6)},
    },
    "explain_one": {
        "side": True,
        "l_sh_flex": 45,
        "l_sh_abd": 30,
        "l_elbow": 70,
        "l_sh_twist": -15,
        "osc": {"l_elbow": (18, 1.0), "l_sh_flex": (10, 0.7)},
    },
    "phone_ear": {
        "side": True,
        "l_sh_flex": 35,
        "l_sh_abd": 45,
        "l_sh_twist": 30,
        "l_elbow": 145,
        "neck_lat": 8,
        "r_sh_flex": 10,
        "r_elbow": 30,
    },
    "phone_look": {"side": True, "l_sh_flex": 30, "l_elbow": 100, "l_sh_twist": 35, "neck_flex": 25},
    "hand_mouth": {"side": True, "l_sh_flex": 40, "l_sh_abd": 15, "l_sh_twist": 45, "l_elbow": 140},
    "hand_held_low": {"side": True, "l_sh_flex": 10, "l_sh_abd": 12, "l_elbow": 75, "l_sh_twist": 10},
    "eat_both": {
        "l_sh_flex": 30,
        "r_sh_flex": 35,
        "l_elbow": 110,
        "r_elbow": 90,
        "l_sh_twist": 40,
        "r_sh_twist": 35,
        "neck_flex": 12,
        "osc": {"r_elbow": (25, 0.5)},
    },
    "wave": {
        "side": True,
        "l_sh_abd": 115,
        "l_sh_flex": 35,
        "l_elbow": 75,
        "l_sh_twist": -20,
        "osc": {"l_sh_twist": (22, 2.0), "l_elbow": (12, 2.0)},
    },
    "handshake": {"side": True, "l_sh_flex": 40, "l_elbow": 45, "spine_flex": 8, "osc": {"l_elbow": (8, 2.5)}},
    "bow": {"spine_flex": 30, "pelvis_pitch": 12, "l_hip_flex": 10, "r_hip_flex": 10, "neck_flex": 15},
    "crouch_reach": {
        "l_hip_flex": 100,
        "r_hip_flex": 100,
        "l_knee": 120,
        "r_knee": 120,
        "l_ankle": 30,
        "r_ankle": 30,
        "spine_flex": 25,
        "pelvis_pitch": 15,
        "l_sh_flex": 55,
        "r_sh_flex": 45,
        "l_elbow": 20,
        "r_elbow": 30,
        "l_hip_abd": 12,
        "r_hip_abd": 12,
    },
    "bend_reach": {
        "side": True,
        "spine_flex": 45,
        "pelvis_pitch": 25,
        "l_hip_flex": 25,
        "r_hip_flex": 25,
        "l_knee": 15,
        "r_knee": 15,
        "l_sh_flex": 75,
        "l_elbow": 10,
        "neck_flex": -10,
    },
    "reach_high": {
        "side": True,
        "l_sh_flex": 150,
        "l_sh_abd": 15,
        "l_elbow": 10,
        "l_ankle": -20,
        "r_ankle": -20,
        "neck_flex": -15,
    },
    "carry": {"l_sh_flex": 20, "r_sh_flex": 20, "l_elbow": 95, "r_elbow": 95, "l_sh_twist": 30, "r_sh_twist": 30},
    "pose_arms_up": {"l_sh_flex": 165, "r_sh_flex": 165, "l_elbow": 15, "r_elbow": 15, "neck_flex": -15},
    "pose_t": {"l_sh_abd": 90, "r_sh_abd": 90, "l_elbow": 5, "r_elbow": 5},
    "pose_flex": {"l_sh_abd": 90, "r_sh_abd": 90, "l_elbow": 110, "r_elbow": 110, "l_sh_twist": -60, "r_sh_twist": -60},
    "pose_lunge": {
        "side": True,
        "l_hip_flex": 70,
        "l_knee": 75,
        "r_hip_flex": -15,
        "r_knee": 10,
        "pelvis_pitch": 8,
        "l_sh_abd": 60,
        "r_sh_abd": 60,
        "spine_flex": 5,
    },
    "pose_leg_side": {
        "side": True,
        "l_hip_abd": 35,
        "r_hip_abd": -5,
        "l_sh_abd": 70,
        "spine_lat": -10,
        "pelvis_roll": -5,
    },
    "pose_one_leg": {"side": True, "l_hip_flex": 60, "l_knee": 90, "l_sh_abd": 80, "r_sh_abd": 80},
    "photo": {
        "l_sh_flex": 60,
        "r_sh_flex": 60,
        "l_sh_abd": 30,
        "r_sh_abd": 30,
        "l_sh_twist": 45,
        "r_sh_twist": 45,
        "l_elbow": 125,
        "r_elbow": 125,
        "neck_flex": -5,
    },
    "photo_crouch": {
        "l_sh_flex": 60,
        "r_sh_flex": 60,
        "l_sh_abd": 30,
        "r_sh_abd": 30,
        "l_sh_twist": 45,
        "r_sh_twist": 45,
        "l_elbow": 125,
        "r_elbow": 125,
        "l_hip_flex": 85,
        "r_hip_flex": 90,
        "l_knee": 105,
        "r_knee": 110,
        "l_ankle": 25,
        "r_ankle": 25,
        "spine_flex": 15,
        "pelvis_pitch": 10,
    },
    "photo_lean": {
        "side": True,
        "l_sh_flex": 60,
        "r_sh_flex": 60,
        "l_sh_abd": 30,
        "r_sh_abd": 30,
        "l_sh_twist": 45,
        "r_sh_twist": 45,
        "l_elbow": 125,
        "r_elbow": 125,
        "spine_lat": 15,
        "spine_twist": 20,
        "l_knee": 25,
    },
    "leash": {"side": True, "l_sh_flex": 25, "l_elbow": 45, "l_sh_abd": 10, "spine_flex": 6},
    "pet_dog": {
        "side": True,
        "spine_flex": 40,
        "pelvis_pitch": 20,
        "l_hip_flex": 40,
        "r_hip_flex": 40,
        "l_knee": 50,
        "r_knee": 50,
        "l_ankle": 15,
        "r_ankle": 15,
        "l_sh_flex": 70,
        "l_elbow": 15,
    },
    "talk_side": {"side": True, "neck_twist": 40, "spine_twist": 12, "l_sh_flex": 20, "l_elbow": 60},
    "hold_arm": {"side": True, "l_sh_abd": 25, "l_elbow": 60, "l_sh_twist": -20, "neck_twist": 25},
    # seated (a chair: hip ~90, knee ~90)
    "sit": {
        "l_hip_flex": 88,
        "r_hip_flex": 88,
        "l_knee": 92,
        "r_knee": 92,
        "l_hip_abd": 6,
        "r_hip_abd": 6,
        "l_sh_flex": 35,
        "r_sh_flex": 35,
        "l_elbow": 65,
        "r_elbow": 65,
        "l_sh_twist": 30,
        "r_sh_twist": 30,
        "spine_flex": 8,
    },
    "sit_lean_fwd": {
        "l_hip_flex": 95,
        "r_hip_flex": 95,
        "l_knee": 100,
        "r_knee": 100,
        "spine_flex": 30,
        "pelvis_pitch": 10,
        "l_sh_flex": 45,
        "r_sh_flex": 45,
        "l_elbow": 90,
        "r_elbow": 90,
        "l_sh_twist": 25,
        "r_sh_twist": 25,
        "l_hip_abd": 10,
        "r_hip_abd": 10,
    },
    "sit_lean_back": {
        "l_hip_flex": 75,
        "r_hip_flex": 75,
        "l_knee": 65,
        "r_knee": 70,
        "spine_flex": -10,
        "pelvis_pitch": -10,
        "l_sh_abd": 20,
        "r_sh_abd": 20,
        "l_elbow": 30,
        "r_elbow": 30,
    },
    "sit_cross_legs": {
        "side": True,
        "l_hip_flex": 100,
        "l_hip_abd": -12,
        "l_knee": 100,
        "l_hip_twist": 20,
        "r_hip_flex": 88,
        "r_knee": 92,
        "l_sh_flex": 30,
        "r_sh_flex": 30,
        "l_elbow": 70,
        "r_elbow": 70,
        "l_sh_twist": 30,
        "r_sh_twist": 30,
    },
    "sit_phone": {
        "side": True,
        "l_hip_flex": 88,
        "r_hip_flex": 88,
        "l_knee": 92,
        "r_knee": 92,
        "l_sh_flex": 35,
        "l_sh_abd": 45,
        "l_sh_twist": 30,
        "l_elbow": 145,
        "r_sh_flex": 35,
        "r_elbow": 65,
        "r_sh_twist": 30,
        "spine_flex": 8,
    },
    "sit_eat": {
        "l_hip_flex": 92,
        "r_hip_flex": 92,
        "l_knee": 95,
        "r_knee": 95,
        "spine_flex": 18,
        "l_sh_flex": 35,
        "r_sh_flex": 40,
        "l_elbow": 110,
        "r_elbow": 95,
        "l_sh_twist": 40,
        "r_sh_twist": 35,
        "neck_flex": 15,
        "osc": {"r_elbow": (25, 0.5), "r_sh_flex": (8, 0.5)},
    },
    "sit_floor": {
        "l_hip_flex": 115,
        "r_hip_flex": 112,
        "l_knee": 95,
        "r_knee": 100,
        "pelvis_pitch": -15,
        "spine_flex": 30,
        "l_hip_abd": 10,
        "r_hip_abd": 12,
        "l_sh_flex": 50,
        "r_sh_flex": 50,
        "l_elbow": 40,
        "r_elbow": 40,
        "l_sh_twist": 20,
        "r_sh_twist": 20,
    },
}
_SEATED = {"sit", "sit_lean_fwd", "sit_lean_back", "sit_cross_legs", "sit_phone", "sit_eat", "sit_floor"}


@dataclass(frozen=True)
class _Activity:
    poses: dict  # pose name -> weight
    move_prob: float  # probability that a standing key-pose segment walks somewhere
    hold_s: tuple  # key-pose hold duration range, seconds
    speed: tuple  # walking speed range, m/s
    turn_deg: float  # heading wander amplitude while standing, degrees
    walk_all: bool = False  # walks continuously (walking activities)
    swing: float = 1.0  # arm swing scale while walking


ACTIVITY_SPECS = {
    "walking": _Activity(
        {"neutral": 6, "hands_back": 1, "talk_side": 1, "hold_arm": 1}, 1.0, (1.0, 3.0), (1.0, 1.5), 0.0, walk_all=True
    ),
    "walk_dog": _Activity({"leash": 6, "pet_dog": 1, "neutral": 1}, 0.8, (1.0, 2.5), (0.5, 1.1), 60.0, swing=0.5),
    "walk_together": _Activity(
        {"talk_side": 4, "neutral": 2, "explain_one": 1}, 1.0, (1.0, 3.0), (0.7, 1.2), 0.0, walk_all=True, swing=0.7
    ),
    "directions": _Activity(
        {"point": 4, "explain_one": 2, "neutral": 2, "hands_front": 1, "weight_shift": 1},
        0.45,
        (1.0, 2.5),
        (0.6, 1.1),
        90.0,
    ),
    "discussion": _Activity(
        {"explain": 4, "explain_one": 3, "arms_crossed": 1, "hands_on_hips": 1, "weight_shift": 2},
        0.35,
        (1.0, 3.0),
        (0.5, 1.0),
        70.0,
    ),
    "phoning": _Activity(
        {"phone_ear": 5, "phone_look": 1, "sit_phone": 2, "weight_shift": 1},
        0.35,
        (1.5, 3.5),
        (0.5, 1.0),
        90.0,
        swing=0.5,
    ),
    "smoking": _Activity(
        {"hand_mouth": 3, "hand_held_low": 4, "sit": 1, "weight_shift": 1}, 0.3, (0.8, 2.5), (0.5, 0.9), 60.0
    ),
    "eating": _Activity({"sit_eat": 5, "eat_both": 3, "hand_mouth": 1, "sit": 1}, 0.15, (1.0, 3.0), (0.5, 0.9), 30.0),
    "waiting": _Activity(
        {"neutral": 3, "weight_shift": 3, "arms_crossed": 2, "hands_back": 2, "hands_on_hips": 1, "reach_high": 1},
        0.35,
        (1.5, 4.0),
        (0.4, 0.9),
        90.0,
    ),
    "greeting": _Activity({"wave": 4, "handshake": 3, "bow": 1, "neutral": 1}, 0.5, (1.0, 2.5), (0.6, 1.2), 60.0),
    "purchases": _Activity(
        {"crouch_reach": 3, "bend_reach": 3, "carry": 2, "reach_high": 1, "neutral": 1},
        0.45,
        (1.0, 2.5),
        (0.5, 1.0),
        90.0,
    ),
    "posing": _Activity(
        {
            "pose_arms_up": 2,
            "pose_t": 2,
            "pose_flex": 2,
            "pose_lunge": 2,
            "pose_leg_side": 2,
            "pose_one_leg": 1,
            "hands_on_hips": 1,
        },
        0.3,
        (1.0, 2.5),
        (0.5, 1.0),
        120.0,
    ),
    "photo": _Activity(
        {"photo": 4, "photo_crouch": 2, "photo_lean": 2, "neutral": 1}, 0.4, (1.0, 2.5), (0.5, 1.0), 90.0
    ),
    "sitting": _Activity(
        {"sit": 3, "sit_lean_fwd": 2, "sit_lean_back": 2, "sit_cross_legs": 2, "sit_phone": 1, "sit_eat": 1},
        0.0,
        (1.5, 4.0),
        (0.5, 0.8),
        10.0,
    ),
    "sitting_down": _Activity(
        {"sit": 2, "sit_lean_fwd": 2, "sit_floor": 2, "neutral": 2, "crouch_reach": 1, "weight_shift": 1},
        0.3,
        (1.0, 3.0),
        (0.5, 0.9),
        40.0,
    ),
}
ACTIVITIES = tuple(ACTIVITY_SPECS)

#: The 15 canonical Human3.6M actions -> activity generator.
H36M_ACTION_TO_ACTIVITY = {
    "Directions": "directions",
    "Discussion": "discussion",
    "Eating": "eating",
    "Greeting": "greeting",
    "Phoning": "phoning",
    "Photo": "photo",
    "Posing": "posing",
    "Purchases": "purchases",
    "Sitting": "sitting",
    "SittingDown": "sitting_down",
    "Smoking": "smoking",
    "Waiting": "waiting",
    "WalkDog": "walk_dog",
    "Walking": "walking",
    "WalkTogether": "walk_together",
}

_JITTER_DEG = 6.0  # std of per-occurrence key-pose variation on the channels a pose sets
_BASE_JITTER = 3.0  # std of variation on every channel
_ALIVE_DEG = 2.5  # std of slow "alive" fluctuation on every channel
#: Walking paths stay inside this disc (world mm): the floor area that all four H36M cameras see in full
#: for a standing adult (the rig's common field of view is centred a little off the world origin).
CAPTURE_CENTER = np.array([250.0, 500.0])
CAPTURE_RADIUS = 1300.0
_LAT_ACC = 2000.0  # largest sideways acceleration while walking a curve, mm/s^2


def _mirror(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if k.startswith("l_"):
            out["r_" + k[2:]] = v
        elif k.startswith("r_"):
            out["l_" + k[2:]] = v
        elif k in ("spine_lat", "spine_twist", "neck_lat", "neck_twist", "pelvis_roll"):
            out[k] = -v
        else:
            out[k] = v
    return out


def _sample_pose(name: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A key pose (C,) in degrees with random variation, and its oscillations {channel index: (amp, Hz)}."""
    spec = dict(_POSES[name])
    osc = spec.pop("osc", {})
    side = spec.pop("side", False)
    if side and rng.random() < 0.5:
        spec = _mirror(spec)
        osc = _mirror(osc)
    v = _vec(_NEUTRAL) + _vec(spec)
    mask = _vec({k: 1.0 for k in spec}) > 0
    v = v + rng.normal(0, _BASE_JITTER, v.shape) + mask * rng.normal(0, _JITTER_DEG, v.shape)
    return v, {_CI[k]: (a * rng.uniform(0.7, 1.3), f * rng.uniform(0.8, 1.25)) for k, (a, f) in osc.items()}


# ----------------------------------------------------------------------------- smooth random signals
def _smooth_noise(rng, n: int, dims: int, fps: float, timescale_s: float, std: float) -> np.ndarray:
    """Gaussian-filtered white noise (n, dims) with the given std and correlation time."""
    sigma = max(timescale_s * fps, 1e-3)
    pad = int(4 * sigma) + 1
    w = rng.normal(size=(n + 2 * pad, dims))
    y = gaussian_filter1d(w, sigma, axis=0, mode="wrap")[pad : pad + n]
    return y * (std / np.sqrt(1.0 / (2.0 * np.sqrt(np.pi) * sigma)))


def _chaikin(pts: np.ndarray, iters: int = 5) -> np.ndarray:
    for _ in range(iters):
        a, b = pts[:-1], pts[1:]
        q, r = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        pts = np.concatenate([pts[:1], np.stack([q, r], 1).reshape(-1, 2), pts[-1:]])
    return pts


def _arc_length(curve: np.ndarray, step: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline (N, 2) mm every ``step`` mm: (arc length (M,), points (M, 2))."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    keep = np.concatenate([[True], np.diff(s) > 1e-9])
    s, curve = s[keep], curve[keep]
    u = np.arange(0.0, s[-1], step) if s[-1] > step else np.array([0.0, s[-1]])
    return u, np.stack([np.interp(u, s, curve[:, 0]), np.interp(u, s, curve[:, 1])], -1)


def _path(rng, length_mm: float, mode: str = "wander") -> tuple[np.ndarray, np.ndarray]:
    """A smooth walking path inside the capture disc, at least ``length_mm`` long: (arc length (N,), xy (N, 2)).

    ``loop``: around the capture centre on a wobbly closed curve; ``shuttle``: back and forth along chords
    with U-turns at the ends (the direction drifts); ``wander``: between random spots (for stop-and-go).
    """
    R, c0 = CAPTURE_RADIUS, CAPTURE_CENTER
    need = length_mm + 3000.0
    if mode == "loop":
        turns = need / (2 * np.pi * 0.75 * R) + 1
        th = np.linspace(0, 2 * np.pi * turns, int(400 * turns)) * rng.choice([-1, 1]) + rng.uniform(0, 2 * np.pi)
        k = rng.uniform(0, 2 * np.pi, 3)
        r = R * (0.8 + 0.08 * np.sin(2 * th + k[0]) + 0.05 * np.sin(3 * th + k[1]) + 0.03 * np.sin(th + k[2]))
        return _arc_length(c0 + np.stack([r * np.cos(th), r * np.sin(th)], -1))
    pts, total = [], 0.0
    if mode == "shuttle":
        alpha = rng.uniform(0, np.pi)
        side = 1.0
        while total < need * 1.2 or len(pts) < 2:
            alpha += rng.normal(0, 0.35)
            d = np.array([np.cos(alpha), np.sin(alpha)])
            perp = np.array([-d[1], d[0]])
            end = c0 + rng.uniform(-0.15, 0.15) * R * perp + side * 0.7 * R * d
            turn = rng.choice([-1.0, 1.0]) * 350.0 * perp  # U-turn of ~0.35 m radius at each end
            pts += [end + turn, end - turn]
            side = -side
            total += 1.4 * R
        return _arc_length(_chaikin(np.array(pts), 6))
    pts = [c0 + rng.uniform(-0.6, 0.6, 2) * R]
    while total < need * 1.3:
        for _ in range(50):
            r = R * np.sqrt(rng.uniform(0.0, 1.0))
            th = rng.uniform(0, 2 * np.pi)
            cand = c0 + np.array([r * np.cos(th), r * np.sin(th)])
            if np.linalg.norm(cand - pts[-1]) > 0.9 * R:
                break
        total += np.linalg.norm(cand - pts[-1])
        pts.append(cand)
    return _arc_length(_chaikin(np.array(pts)))


# ----------------------------------------------------------------------------- schedule and motion
def _schedule(spec: _Activity, activity: str, n: int, fps: float, rng):
    """Key-pose segments covering n frames: list of (t_start_s, t_end_s, pose (C,), osc, moving, seated)."""
    names = list(spec.poses)
    p = np.array([spec.poses[k] for k in names], float)
    p /= p.sum()
    segs, t, total = [], 0.0, n / fps
    seated_now = None
    while t < total:
        name = names[rng.choice(len(names), p=p)]
        seated = name in _SEATED
        if activity == "sitting_down" and seated_now is not None and seated == seated_now and rng.random() < 0.6:
            name = names[rng.choice(len(names), p=p)]  # favour alternating sitting and standing
            seated = name in _SEATED
        dur = rng.uniform(*spec.hold_s)
        if seated and seated_now is False or (not seated and seated_now):
            dur += 0.8  # time to sit down / stand up
        pose, osc = _sample_pose(name, rng)
        moving = (not seated) and (spec.walk_all or rng.random() < spec.move_prob)
        segs.append((t, t + dur, pose, osc, moving, seated))
        seated_now = seated
        t += dur
    return segs


#: Gait: stance fraction of the cycle, heel rise (mm) before toe-off, swing foot lift (mm), pelvis bob (x leg).
_STANCE = 0.6
_HEEL_RISE = 70.0
_SWING_LIFT = 60.0
_BOB = 0.02


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _footholds(cycles, off, hip_xy, yaw):
    """Planted-foot plan of one leg: per frame the ankle target (T, 2) world mm, the foot's yaw (T,) rad, the
    cycle fraction u (T,) and the swing progress (T,).

    Stance k of this leg spans cycle values [k - off, k - off + _STANCE); its foothold is where the hip is at
    mid-stance (so the planted foot stays put however the body turns); the swing moves between footholds.
    """
    T = len(cycles)
    frames = np.arange(T, dtype=float)
    c = cycles + 1e-9 * frames  # strictly increasing for interpolation
    ph = cycles + off
    k = np.floor(ph)
    u = ph - k
    sw = np.clip((u - _STANCE) / (1 - _STANCE), 0.0, 1.0)

    def at(cyc):  # hip position and yaw at a cycle value (clamped to the sequence)
        f = np.interp(cyc, c, frames)
        return (
            np.stack([np.interp(f, frames, hip_xy[:, 0]), np.interp(f, frames, hip_xy[:, 1])], -1),
            np.interp(f, frames, yaw),
        )

    p0, y0 = at(k - off + 0.5 * _STANCE)  # this cycle's stance foothold
    p1, y1 = at(k + 1 - off + 0.5 * _STANCE)  # the next one (target of the swing)
    # the swing moves the foot from where it is relative to the hip at lift-off to where it will be at heel
    # strike, in the turning body frame, so on a curve it follows the hip's arc rather than cutting the chord
    hs, ys = at(k - off + _STANCE)
    he, ye = at(k + 1 - off)

    def to_body(p, h, a):
        return rotate_xy(p - h, -a)

    e = _smoothstep(sw)[:, None]
    rel = (1 - e) * to_body(p0, hs, ys) + e * to_body(p1, he, ye)
    swing_xy = hip_xy + rotate_xy(rel, yaw)
    target = np.where((u < _STANCE)[:, None], p0, swing_xy)
    fyaw = np.where(u < _STANCE, y0, (1 - e[:, 0]) * y0 + e[:, 0] * y1)
    return target, fyaw, u, sw


def _gait(
    cycles: np.ndarray,
    root_xy: np.ndarray,
    yaw: np.ndarray,
    pitch: np.ndarray,
    roll: np.ndarray,
    amp: np.ndarray,
    swing: float,
    body: Body,
) -> np.ndarray:
    """Walking channels (T, C) in degrees from the gait cycle count (T,), root path (T, 2) mm, yaw (T,) rad,
    the posture's pelvis pitch and roll (T,) deg and walking amount (T,) in [0, 1].

    Each foot is planted in the world during stance (flat, the heel rising before toe-off) and swings to the
    next foothold; the leg reaches it by inverse kinematics: hip flexion and knee from the two-link (thigh,
    shank) solution in the sagittal plane, hip abduction for the sideways offset, hip twist for the foot's
    heading. The ankle keeps the foot flat (plantar flexion at push-off). The pelvis bobs twice per cycle.
    """
    L1, L2 = np.linalg.norm(body.offsets[2]), np.linalg.norm(body.offsets[3])
    clear = body.clearance[0]
    u_r = cycles % 1.0
    hip_h = (L1 + L2 + clear) * (0.96 - 0.025 * np.cos(4 * np.pi * (u_r - 0.05)))  # hip above the floor, mm
    gait_roll = 3 * np.sin(4 * np.pi * u_r)
    roll = roll + amp * gait_roll  # the pelvis roll the legs must compensate
    g = np.zeros((len(cycles), len(CHANNELS)))
    for side, off, hip_j, sgn in (("r", 0.0, 1, -1.0), ("l", 0.5, 6, 1.0)):
        ho = body.offsets[hip_j, :2]
        hip_xy = root_xy + rotate_xy(np.broadcast_to(ho, (len(yaw), 2)), yaw)
        target, fyaw, u, sw = _footholds(cycles, off, hip_xy, yaw)
        d = target - hip_xy
        # ankle ahead of the hip (x) and to the body's left of it (lat), body frame, mm
        x, lat = np.moveaxis(rotate_xy(d, -yaw), -1, 0)
        st = u < _STANCE
        rise = np.where(
            st,
            _HEEL_RISE * _smoothstep((u - 0.45) / (_STANCE - 0.45)),
            _HEEL_RISE * (1 - _smoothstep(sw / 0.6)) + _SWING_LIFT * np.sin(np.pi * sw),
        )
        dz = hip_h - clear - rise  # hip above the ankle, mm
        abd = np.degrees(np.arctan2(sgn * lat, dz))
        dz = np.hypot(dz, lat)  # leg length needed in the sagittal plane
        dist = np.minimum(np.hypot(x, dz), L1 + L2 - 1e-3)
        knee = np.pi - np.arccos(np.clip((L1**2 + L2**2 - dist**2) / (2 * L1 * L2), -1, 1))
        thigh = np.arctan2(x, dz) + np.arccos(np.clip((L1**2 + dist**2 - L2**2) / (2 * L1 * dist), -1, 1))
        thigh, knee = np.degrees(thigh), np.degrees(knee)
        push = np.where(st, _smoothstep((u - 0.45) / (_STANCE - 0.45)), 1 - _smoothstep(sw / 0.5))
        # the planted foot pivots with the body in turns: only a little of its heading goes into hip twist,
        # since twisting a flexed leg would swing the ankle sideways
        twist = 0.25 * np.degrees(np.angle(np.exp(1j * (fyaw - yaw))))
        g[:, _CI[f"{side}_hip_flex"]] = thigh + pitch
        g[:, _CI[f"{side}_knee"]] = knee
        g[:, _CI[f"{side}_ankle"]] = (knee - thigh) - 28.0 * push + 4.0 * _smoothstep((sw - 0.7) / 0.3)
        g[:, _CI[f"{side}_hip_abd"]] = abd - sgn * roll
        g[:, _CI[f"{side}_hip_twist"]] = -sgn * twist
        # the arm swings with the opposite leg
        rel = np.clip(x / 350.0, -1.2, 1.2)
        g[:, _CI[f"{side}_sh_flex"]] = -18 * swing * rel
        g[:, _CI[f"{side}_elbow"]] = 15 + 12 * swing * np.maximum(0.0, -rel)
    g[:, _CI["pelvis_roll"]] = gait_roll
    g[:, _CI["spine_twist"]] = 5 * np.sin(2 * np.pi * u_r)
    g[:, _CI["spine_flex"]] = 3
    return g * amp[:, None]


_LEG_CH = np.array([_CI[f"{s}_{c}"] for s in "lr" for c in ("hip_flex", "hip_abd", "hip_twist", "knee", "ankle")])
_ARM_SWING_CH = np.array([_CI[f"{s}_{c}"] for s in "lr" for c in ("sh_flex", "elbow")])


def generate_motion(
    activity: str, n_frames: int, body: Body, rng: np.random.Generator, fps: float = 50.0
) -> np.ndarray:
    """Procedural motion of ``activity`` (one of :data:`ACTIVITIES`): world joints (n_frames, 32, 3) mm.

    World frame Z up, floor at z = 0, root path within ~2 m of the origin. Deterministic for a given ``rng``
    state. Bone lengths are exactly those of ``body`` in every frame.
    """
    if activity not in ACTIVITY_SPECS:
        raise ValueError(f"unknown activity {activity!r} (expected one of {', '.join(ACTIVITIES)})")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    spec = ACTIVITY_SPECS[activity]
    n = int(n_frames)
    t = np.arange(n) / fps
    segs = _schedule(spec, activity, n, fps, rng)

    # --- key-pose channels: hold each pose, blend between them (PCHIP: no overshoot)
    knots_t, knots_v = [], []
    prev_end = None
    for t0, t1, pose, _, _, _ in segs:
        trans = min(rng.uniform(0.3, 0.8), 0.45 * (t1 - t0))
        a = t0 + trans if prev_end is not None else t0
        knots_t += [a, t1]
        knots_v += [pose, pose]
        prev_end = t1
    kt = np.array(knots_t)
    kt = kt + 1e-6 * np.arange(len(kt))  # strictly increasing
    ch = PchipInterpolator(kt, np.array(knots_v), axis=0, extrapolate=True)(t)

    # --- oscillations (waving, gesturing, chewing) with an envelope that follows the segment
    idx = np.clip(np.searchsorted([s[0] for s in segs], t, side="right") - 1, 0, len(segs) - 1)
    for k, (t0, t1, _, osc, _, _) in enumerate(segs):
        if not osc:
            continue
        env = np.clip(np.minimum(t - t0 - 0.3, t1 - t) / 0.4, 0.0, 1.0) * (idx == k)
        env = gaussian_filter1d(env, 0.1 * fps) if n > 1 else env
        for c, (amp, f) in osc.items():
            ch[:, c] += amp * env * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))

    ch += _smooth_noise(rng, n, len(CHANNELS), fps, 0.6, _ALIVE_DEG)

    # --- locomotion: speed profile (mm/s), arc length along a path, heading
    moving = np.array([s[4] for s in segs])[idx]
    v_seg = np.array([rng.uniform(*spec.speed) * 1000.0 for _ in segs])[idx]
    speed = np.where(moving, v_seg, 0.0)
    if n > 1:
        speed = gaussian_filter1d(speed, 0.3 * fps, mode="nearest")
    mode = ("loop" if rng.random() < 0.5 else "shuttle") if spec.walk_all else "wander"
    arc, curve = _path(rng, float(speed.sum() / fps), mode)
    tang = np.gradient(curve, axis=0)
    path_heading = np.unwrap(np.arctan2(tang[:, 1], tang[:, 0]))
    # slow down in tight turns: lateral acceleration v^2 * curvature <= _LAT_ACC
    curv = np.abs(np.gradient(path_heading, arc))
    curv = gaussian_filter1d(curv, 25.0, mode="nearest")  # over ~250 mm of path
    for _ in range(2):
        s = np.cumsum(speed) / fps
        s = s - s[0]
        limit = np.sqrt(_LAT_ACC / np.maximum(np.interp(s, arc, curv), 1e-9))
        speed = np.minimum(np.where(moving, v_seg, 0.0), limit)
        if n > 1:
            speed = gaussian_filter1d(speed, 0.3 * fps, mode="nearest")
    s = np.cumsum(speed) / fps
    s = s - s[0]
    xy = np.stack([np.interp(s, arc, curve[:, 0]), np.interp(s, arc, curve[:, 1])], -1)
    heading = np.interp(s, arc, path_heading)
    if n > 1:
        heading = gaussian_filter1d(heading, 0.15 * fps, mode="nearest")
    w = np.clip(speed / 700.0, 0.0, 1.0)  # how much the person is walking
    # while standing, the person faces around (turn); walking, along the path
    turn = _smooth_noise(rng, n, 1, fps, 1.5, np.radians(spec.turn_deg))[:, 0]
    turn += rng.uniform(-1, 1) * np.radians(min(2 * spec.turn_deg, 180.0))
    yaw = heading + (1 - w) * turn + np.radians(3) * _smooth_noise(rng, n, 1, fps, 1.0, 1.0)[:, 0]

    # --- gait cycle overlaid while walking: stride grows with speed (1.45 x leg length at 1.2 m/s)
    stride = body.leg_mm * (0.9 + 0.55 * np.minimum(speed, 1600.0) / 1200.0)
    cycles = np.cumsum(speed / stride) / fps + rng.uniform(0, 1)
    g = _gait(cycles, xy, yaw, ch[:, _CI["pelvis_pitch"]], ch[:, _CI["pelvis_roll"]], w, spec.swing, body)
    ch[:, _LEG_CH] = (1 - w[:, None]) * ch[:, _LEG_CH] + g[:, _LEG_CH]
    ch[:, _ARM_SWING_CH] += g[:, _ARM_SWING_CH] * (1 - 0.6 * (np.abs(ch[:, _ARM_SWING_CH]) > 60))
    others = np.setdiff1d(np.arange(len(CHANNELS)), np.concatenate([_LEG_CH, _ARM_SWING_CH]))
    ch[:, others] += g[:, others]

    ch = np.clip(ch, LIMITS[:, 0], LIMITS[:, 1])

    # --- forward kinematics, then put the lowest foot point on the floor
    local = _channels_to_local(ch, np.degrees(yaw))
    pos = forward_kinematics(local, body.offsets, np.zeros((n, 3)))
    sole = pos[:, _CONTACT, 2] - body.clearance  # (T, 6) height of each contact point above its sole
    floor = sole.min(axis=1)
    pos[:, :, 2] -= floor[:, None]
    pos[:, :, :2] += xy[:, None, :]
    return pos
