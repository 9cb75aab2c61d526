"""Joint layouts: the raw 32-joint Human3.6M skeleton and the standard 17-joint subset.

All mvtools tables use the 17-joint H36M order below (VideoPose3D / 3d-pose-baseline order).
"""

from __future__ import annotations

import numpy as np

H36M32_NAMES = [
    "Hips",
    "RightUpLeg",
    "RightLeg",
    "RightFoot",
    "RightToeBase",
    "RightToeSite",
    "LeftUpLeg",
    "LeftLeg",
    "LeftFoot",
    "LeftToeBase",
    "LeftToeSite",
    "Spine",
    "Spine1",
    "Neck",
    "Head",
    "HeadSite",
    "LeftShoulder",
    "LeftArm",
    "LeftForeArm",
    "LeftHand",
    "LeftHandThumb",
    "LeftThumbSite",
    "L_Wrist_End",
    "LeftWristSite",
    "RightShoulder",
    "RightArm",
    "RightForeArm",
    "RightHand",
    "RightHandThumb",
    "RightThumbSite",
    "R_Wrist_End",
    "RightWristSite",
]
H36M32_PARENTS = np.array(
    [
        -1,
        0,
        1,
        2,
        3,
        4,
        0,
        6,
        7,
        8,
        9,
        0,
        11,
        12,
        13,
        14,
        12,
        16,
        17,
        18,
        19,
        20,
        19,
        22,
        12,
        24,
        25,
        26,
        27,
        28,
        27,
        30,
    ]
)

#: Raw 32-joint indices kept in the 17-joint layout (VideoPose3D, mmpose, 3d-pose-baseline).
H36M32_TO_17 = np.array([0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27])

H36M17_NAMES = [
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
]
#: Parents in the 17-joint layout, shoulders hanging off the thorax (VideoPose3D).
H36M17_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15])
H36M17_LEFT = [4, 5, 6, 11, 12, 13]
H36M17_RIGHT = [1, 2, 3, 14, 15, 16]
#: Index permutation that mirrors left and right (used for flips and left/right swaps).
H36M17_FLIP = np.arange(17)
H36M17_FLIP[H36M17_LEFT], H36M17_FLIP[H36M17_RIGHT] = H36M17_RIGHT, H36M17_LEFT
ROOT = 0
NUM_JOINTS = 17


def layout_dict() -> dict:
    """The 17-joint layout as stored in a dataset manifest."""
    return {
        "name": "h36m17",
        "names": H36M17_NAMES,
        "parents": H36M17_PARENTS.tolist(),
        "left": H36M17_LEFT,
        "right": H36M17_RIGHT,
        "root": ROOT,
    }


def bones(parents: np.ndarray = H36M17_PARENTS) -> np.ndarray:
    """(B, 2) array of (child, parent) index pairs."""
    child = np.flatnonzero(parents >= 0)
    return np.stack([child, parents[child]], axis=1)


def bone_lengths(joints: np.ndarray, parents: np.ndarray = H36M17_PARENTS) -> np.ndarray:
    """Bone lengths (..., B) of joints (..., J, 3), same unit as the input (mm)."""
    b = bones(parents)
    return np.linalg.norm(joints[..., b[:, 0], :] - joints[..., b[:, 1], :], axis=-1)


def chain_kinematics(parents: np.ndarray, rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Global joint positions (T, J, 3) from local rotations (T, J, 3, 3) and translations (T, J, 3).

    Joints must be ordered parents first (as in a BVH file). One vectorised step per joint.
    """
    T, J = trans.shape[:2]
    G = np.empty_like(rot)
    P = np.empty_like(trans)
    for j in range(J):
        p = parents[j]
        if p < 0:
            G[:, j] = rot[:, j]
            P[:, j] = trans[:, j]
        else:
            G[:, j] = G[:, p] @ rot[:, j]
            P[:, j] = P[:, p] + np.einsum("tij,tj->ti", G[:, p], trans[:, j])
    return P
