"""OpenCV Farneback flow with TecoGAN's settings, used by tOF, E*warp on real clips and alignment."""

from __future__ import annotations

import cv2
import numpy as np

# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags (TecoGAN's tOF settings). On
# the sample clips' LR frames they also beat the smaller windows and deeper pyramids tried for
# alignment (tests/test_flow_estimators.py has the figures).
FARNEBACK_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)


def farneback(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow from grey uint8 `src` to `dst`: src(x) ~ dst(x + flow(x))."""
    return cv2.calcOpticalFlowFarneback(src, dst, None, *FARNEBACK_PARAMS)
