"""Confidence intervals over independent replications (simulated days).

Each replication is one whole simulated day with its own random streams (seed ``s``,
``s + 1`` …), so the days' figures are independent and identically distributed; a figure
of the day (a service level, an ASA …) is estimated by the mean over ``n`` days and a
confidence interval from Student's t distribution with ``n − 1`` degrees of freedom::

    mean ± t(1 − α/2, n − 1) · s / √n          (s: the sample standard deviation)

This is the method of independent replications (Law, *Simulation Modeling and
Analysis*, ch. 9): it needs no assumption about how the calls of one day depend on each
other — only that the day's figure is roughly normal across days, which sums of a few
hundred calls are. A figure a day does not define (no answered call: no ASA) is left out
of that figure's mean, and ``n`` says how many days it was taken over.

Pure: no I/O. The t quantile is computed here (the regularised incomplete beta function
by its continued fraction, then bisection), so no numerical library is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: The confidence of the intervals the report states.
CONFIDENCE = 0.95


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value with P(T ≤ t) = p (bisection on :func:`t_cdf`)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be within (0, 1)")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """A figure over independent days: its mean and the half-width of its interval."""

    mean: float
    #: ``None`` with a single day (no interval can be given).
    half_width: float | None
    #: Days the figure is defined on.
    n: int
    confidence: float = CONFIDENCE

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean": self.mean, "half_width": self.half_width, "low": self.low,
                "high": self.high, "n": self.n}


def estimate(values: Iterable[float | None],
             confidence: float = CONFIDENCE) -> Estimate | None:
    """Mean ± t(1 − α/2, n − 1)·s/√n over the days that define the figure (``None``
    values are left out); ``None`` when no day does."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return None
    mean = math.fsum(xs) / n
    if n == 1:
        return Estimate(mean, None, 1, confidence)
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    t = t_quantile(0.5 + confidence / 2.0, n - 1)
    return Estimate(mean, t * math.sqrt(var / n), n, confidence)
