"""Circle fit in the plane, used to choose the power-law window (Sharma & Kaplan A.1)."""

from __future__ import annotations

import numpy as np

#: A circle wider than this many times the spread of its points is a straight line.
_LINE_RADIUS_FACTOR = 1e9


def circle_radius(x: np.ndarray, y: np.ndarray) -> float:
    """Radius of the best-fit circle through the points (x, y); ``inf`` for a straight line.

    Uses the "hyper" algebraic fit of Al-Sharadqah & Chernov (2009), which
    parameterises the circle as A(x² + y²) + Bx + Cy + D = 0 so that a line
    (A = 0) is a regular solution with infinite radius, and which has no
    essential bias on short arcs (unlike the Kåsa fit). Three points give their
    circumcircle.

    Parameters
    ----------
    x, y : ndarray of shape (n,)
        Coordinates, n >= 3.

    Returns
    -------
    float
        The radius, ``inf`` when the points are collinear to round-off.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 5)
    >>> round(circle_radius(2 * np.cos(t), 2 * np.sin(t)), 6)
    2.0
    >>> circle_radius(t, 3 * t)
    inf
    """
    x = x - x.mean()
    y = y - y.mean()
    spread = float(np.sqrt(np.mean(x * x + y * y)))
    if spread == 0.0:
        return 0.0
    x, y = x / spread, y / spread
    z = x * x + y * y
    design = np.column_stack([z, x, y, np.ones_like(x)])
    _, s, vt = np.linalg.svd(design, full_matrices=True)
    if s.size < 4 or s[-1] < 1e-12 * s[0]:
        params = vt[-1]  # the points lie exactly on one circle (or line)
    else:
        zm = z.mean()
        constraint = np.array(
            [[8 * zm, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0], [2, 0, 0, 0]], dtype=float
        )
        w = vt.T @ np.diag(s) @ vt
        evals, evecs = np.linalg.eig(w @ np.linalg.inv(constraint) @ w)
        order = np.argsort(evals.real)
        params = np.linalg.solve(w, evecs[:, order[1]].real)
    a, b, c, d = params
    disc = b * b + c * c - 4 * a * d
    if abs(a) * _LINE_RADIUS_FACTOR <= np.sqrt(max(disc, 0.0)):
        return float("inf")
    return float(np.sqrt(max(disc, 0.0)) / (2 * abs(a)) * spread)
