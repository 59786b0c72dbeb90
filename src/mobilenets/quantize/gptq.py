"""Kernels refitted to int8-network inputs and rounded GPTQ-style onto the converter's grid.

    stats = Stats(); stats.add(x_float_columns, x_int8_columns)
    q = gptq(refit(w, stats, "conv"), stats.hqq, scale, "conv")

Pure NumPy on a layer's kernel rows (`graph.rows`) and the second moments
of its inputs in the float and the int8 network.
"""

from __future__ import annotations

import numpy as np

# Rows of the covariance solves: ridge relative to the mean diagonal.
DAMP = 0.01


class Stats:
    """Running second moments of float inputs x and int8-network inputs xq."""

    def __init__(self):
        self.n = 0
        self.hqq = self.hqx = self.hxx = None
        self.mx = self.mq = None

    def add(self, x, xq):
        if x.ndim == 2:  # (n, k)
            hqq, hqx, hxx = xq.T @ xq, xq.T @ x, x.T @ x
            mx, mq = x.sum(0), xq.sum(0)
            n = len(x)
        else:  # (c, n, k)
            xt, qt = np.transpose(x, (0, 2, 1)), np.transpose(xq, (0, 2, 1))
            hqq, hqx, hxx = qt @ xq, qt @ x, xt @ x
            mx, mq = x.sum(1), xq.sum(1)
            n = x.shape[1]
        parts = [np.asarray(v, np.float64) for v in (hqq, hqx, hxx, mx, mq)]
        if self.hqq is None:
            self.hqq, self.hqx, self.hxx, self.mx, self.mq = parts
        else:
            for name, v in zip(("hqq", "hqx", "hxx", "mx", "mq"), parts):
                setattr(self, name, getattr(self, name) + v)
        self.n += n

    def output_error(self, w, q, kind) -> float:
        """|W x - Q xq| / |W x| over the calibration inputs (from the moments)."""
        if kind == "depthwise":
            num = (np.einsum("ci,cij,cj->c", w, self.hxx, w) - 2 * np.einsum("ci,cij,cj->c", q, self.hqx, w)
                   + np.einsum("ci,cij,cj->c", q, self.hqq, q)).sum()
            den = np.einsum("ci,cij,cj->c", w, self.hxx, w).sum()
        else:
            num = (np.einsum("oi,ij,oj->", w, self.hxx, w) - 2 * np.einsum("oi,ij,oj->", q, self.hqx, w)
                   + np.einsum("oi,ij,oj->", q, self.hqq, q))
            den = np.einsum("oi,ij,oj->", w, self.hxx, w)
        return float(np.sqrt(max(num, 0.0) / max(den, 1e-30)))

    def mean_error(self, w, q, kind) -> np.ndarray:
        """Per output channel: mean of W x minus mean of Q xq."""
        if kind == "depthwise":
            return (np.einsum("ci,ci->c", w, self.mx) - np.einsum("ci,ci->c", q, self.mq)) / self.n
        return (w @ self.mx - q @ self.mq) / self.n


def damped(h: np.ndarray) -> np.ndarray:
    h = h.copy()
    if h.ndim == 2:
        d = np.diag(h)
        dead = d <= 0
        h[dead, dead] = 1.0
        h += DAMP * max(float(np.mean(np.diag(h))), 1e-12) * np.eye(len(h))
    else:
        d = np.einsum("cii->ci", h)
        h += (DAMP * np.maximum(d.mean(1), 1e-12))[:, None, None] * np.eye(h.shape[1])[None]
    return h


def refit(w: np.ndarray, stats: Stats, kind: str) -> np.ndarray:
    """W + D minimising |W x - (W + D) xq|^2 + ridge |D|^2.

    The ridge pulls the correction D to zero, not W: an ill-conditioned
    input (neighbouring pixels of a patch) then leaves W as it is instead of
    shrinking it.
    """
    h = damped(stats.hqq)
    diff = stats.hqx - stats.hqq
    if kind == "depthwise":
        rhs = np.einsum("cij,cj->ci", diff, w)
        return w + np.linalg.solve(h, rhs[..., None])[..., 0]
    return w + np.linalg.solve(h, diff @ w.T).T


def gptq(w: np.ndarray, h: np.ndarray, scale: np.ndarray, kind: str) -> np.ndarray:
    """Round rows of `w` to int8 levels of `scale`, each column's error spread over the rest."""
    h = damped(h)
    if kind == "depthwise":
        order = np.argsort(-np.einsum("cii->ci", h).mean(0))
        h = h[:, order][:, :, order]
        u = np.transpose(np.linalg.cholesky(np.linalg.inv(h)), (0, 2, 1))  # (c, k, k)
    else:
        order = np.argsort(-np.diag(h))
        h = h[np.ix_(order, order)]
        u = np.linalg.cholesky(np.linalg.inv(h)).T[None]  # (1, k, k), shared by all rows
    w = w[:, order].copy()
    q = np.zeros_like(w)
    for i in range(w.shape[1]):
        col = w[:, i]
        qc = np.clip(np.round(col / scale), -127, 127) * scale
        err = (col - qc) / u[:, i, i]
        w[:, i + 1:] -= err[:, None] * u[:, i, i + 1:]
        q[:, i] = qc
    out = np.empty_like(q)
    out[:, order] = q
    return pin_scale(out, scale)


def pin_scale(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Keep each row's largest level at +-127.

    The converter takes a row's scale from its largest |weight|: a row whose
    largest level came out as 126 would be re-scaled and every weight in it
    rounded again. Moving that one weight (a level or two, rarely more) is
    the smaller error.
    """
    levels = np.round(q / scale[:, None])
    top = np.abs(levels).argmax(axis=1)
    rows = np.arange(len(q))
    peak = levels[rows, top]
    short = (np.abs(peak) < 127) & (peak != 0)
    levels[rows[short], top[short]] = np.sign(peak[short]) * 127
    return levels * scale[:, None]
