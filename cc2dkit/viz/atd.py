"""Figures of the augmented templates (ATD): a gallery, the drawn parameters, the dot check."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..analysis.atd import DotCheck
from ..data.template_aug import TemplateCopies

PARAM_NAMES = ("rotation (deg)", "shift x (px)", "shift y (px)", "scale")


def template_gallery(copies: TemplateCopies, n: int = 8, landmark_names: Sequence[str] | None = None,
                     reference: np.ndarray | None = None, columns: int = 4) -> Figure:
    """The first ``n`` augmented templates (grid images) with their moved landmarks (green circles).

    ``reference``: optional (L, 2) grid landmarks of the un-augmented template, drawn as red dots
    with a yellow line to each moved landmark so the movement is visible. Each title gives the
    copy's rotation, shift (original pixels) and scale.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n = min(n, len(copies))
    n_lm = copies.landmarks.shape[1]
    if landmark_names is not None and len(landmark_names) != n_lm:
        raise ValueError(f"got {len(landmark_names)} landmark names for {n_lm} landmarks")
    if reference is not None:
        reference = np.asarray(reference, dtype=float)
        if reference.shape != (n_lm, 2):
            raise ValueError(f"reference must have shape ({n_lm}, 2), got {reference.shape}")
    cols = min(columns, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.8 * cols, 3.0 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(copies.images[i, 0].numpy(), cmap="gray", interpolation="nearest")
        pts = copies.landmarks[i]
        if reference is not None:
            for (x0, y0), (x1, y1) in zip(reference, pts):
                ax.plot([x0, x1], [y0, y1], "-", color="yellow", lw=1)
            ax.plot(reference[:, 0], reference[:, 1], ".", color="red", ms=4)
        ax.plot(pts[:, 0], pts[:, 1], "o", mfc="none", mec="lime", ms=6, mew=1.5)
        for name, (x, y) in zip(landmark_names or [], pts):
            ax.annotate(str(name), (x, y), xytext=(3, 3), textcoords="offset points", color="lime", fontsize=6)
        angle, sx, sy, scale = copies.params[i]
        ax.set_title(f"#{i}: {angle:+.1f}°, ({sx:+.1f}, {sy:+.1f}) px, x{scale:.3f}", fontsize=8)
    return fig


def plot_affine_params(copies: TemplateCopies, bins: int = 20) -> Figure:
    """Histograms of the four drawn parameters (rotation, shift x, shift y, scale) of ``copies``."""
    fig = Figure(figsize=(12.0, 2.8), layout="constrained")
    axes = fig.subplots(1, 4)
    for ax, values, name in zip(axes, copies.params.T, PARAM_NAMES):
        ax.hist(values, bins=bins, color="tab:blue")
        ax.set_xlabel(name)
        ax.set_title(f"[{values.min():.3g}, {values.max():.3g}]", fontsize=8)
    axes[0].set_ylabel("copies")
    return fig


def plot_dot_check(check: DotCheck) -> Figure:
    """The dot before and after the map: the moved point (red x) on the warped dot's centroid (green o)."""
    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    a, b = fig.subplots(1, 2)
    a.imshow(check.image, cmap="gray")
    a.plot(*check.point, "rx", ms=9, mew=2)
    a.set_title(f"dot at ({check.point[0]:.2f}, {check.point[1]:.2f})", fontsize=9)
    b.imshow(check.warped, cmap="gray")
    b.plot(*check.centroid, "o", mfc="none", mec="lime", ms=10, mew=2, label="centroid of warped dot")
    b.plot(*check.moved, "rx", ms=9, mew=2, label="moved point")
    angle, sx, sy, scale = check.params
    b.set_title(f"{angle:+.1f}°, ({sx:+.2f}, {sy:+.2f}) px, x{scale:.3f}: error {check.error_px:.3f} px", fontsize=9)
    b.legend(fontsize=7, loc="lower right")
    for ax in (a, b):
        ax.set_xticks([]), ax.set_yticks([])
    return fig
