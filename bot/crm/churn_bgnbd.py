"""BG/NBD, the standard model of customers who buy without a contract (Fader, Hardie & Lee 2005,
"Counting your customers the easy way", Marketing Science 24(2)), fitted by maximum likelihood.

Each customer buys at a steady rate λ while alive (a Poisson process; λ varies across customers as
Gamma(r, α)) and, after each purchase, leaves for good with probability p (p varies as Beta(a, b)).
From three numbers per customer (x: repeat purchases; t_x: when the last one was, since the first;
T: how long we have known them since the first, all in weeks), it gives the chance that the customer
is still "alive" and how many purchases to expect from them.

Written here with scipy rather than taken from a package: `lifetimes` is unmaintained (last release
2020) and does not run on the numpy 2 / pandas versions we pin; PyMC-Marketing brings PyMC, PyTensor
and ArviZ for four parameters. docs/churn-risk.md says more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Fit:
    """The four population parameters and the log-likelihood they reach."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


def log_likelihood(
    r: float, alpha: float, a: float, b: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> Floats:
    """Each customer's log-likelihood (equation 6 of the paper, in logs for large x)."""
    x_, tx, T_ = _arrays(x, t_x, T)
    common = gammaln(r + x_) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x_) - betaln(a, b)
    still = -(r + x_) * np.log(alpha + T_)
    # The customer left right after their last purchase; impossible without a repeat purchase.
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(
            x_ > 0,
            np.log(a) - np.log(np.maximum(b + x_ - 1, 1e-300)) - (r + x_) * np.log(alpha + tx),
            -np.inf,
        )
    return np.asarray(common + np.logaddexp(still, left), dtype=np.float64)


def fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Fit:
    """The parameters that make these customers' purchases likeliest (all four kept positive)."""
    x_, tx, T_ = _arrays(x, t_x, T)

    def negative(logs: Floats) -> float:
        r, alpha, a, b = np.exp(logs)
        return -float(np.sum(log_likelihood(r, alpha, a, b, x_, tx, T_)))

    best = minimize(
        negative, np.zeros(4), method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8}
    )
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    return Fit(r, alpha, a, b, -float(best.fun))


def p_alive(model: Fit, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Floats:
    """The chance each customer is still alive at T (equation 13 of the paper)."""
    x_, tx, T_ = _arrays(x, t_x, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = (model.a / np.maximum(model.b + x_ - 1, 1e-300)) * np.exp(
            (model.r + x_) * (np.log(model.alpha + T_) - np.log(model.alpha + tx))
        )
    return np.asarray(np.where(x_ > 0, 1.0 / (1.0 + odds), 1.0), dtype=np.float64)


def expected_purchases(model: Fit, weeks: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Floats:
    """How many purchases to expect from each customer in the next `weeks` (equation 10)."""
    x_, tx, T_ = _arrays(x, t_x, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    z = weeks / (alpha + T_ + weeks)
    hyper = hyp2f1(r + x_, b + x_, a + b + x_ - 1, z)
    part = (a + b + x_ - 1) / (a - 1) * (1 - ((alpha + T_) / (alpha + T_ + weeks)) ** (r + x_) * hyper)
    return np.asarray(part * p_alive(model, x_, tx, T_), dtype=np.float64)


def _arrays(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[Floats, Floats, Floats]:
    return (
        np.asarray(x, dtype=np.float64),
        np.asarray(t_x, dtype=np.float64),
        np.asarray(T, dtype=np.float64),
    )
