"""BG/NBD scores from the ``lifetimes`` package, computed in a virtualenv of its own.

``lifetimes`` (0.11.3, the reference implementation of BG/NBD, Fader, Hardie & Lee 2005) is not a
churnwatch dependency and pulls in pandas, autograd and dill, which the project does not use. So that
running the bench never changes the project's ``.venv``, :func:`lifetimes_python` creates a separate
venv under the bench cache (``<cache>/lifetimes-0.11.3-pyXY``) the first time, with every package pinned
to versions checked to work together (:data:`PINS`: lifetimes 0.11.3 imports and fits with numpy 2.4 and
pandas 3.1 as they are, no patching), and :func:`bgnbd_scores` runs this file there as a subprocess,
exchanging plain arrays through ``.npz`` files. This file therefore imports nothing from churnwatch and,
at module level, nothing but the standard library.

What is computed, for each observation time T (UTC midnight, as a day number):

* the calibration summary of the purchases strictly before T (``summary_data_from_transaction_data`` with
  ``freq="D"``, ``observation_period_end`` = T: frequency = repeat purchase days, recency and T in days);
* a ``BetaGeoFitter`` fitted on that summary (every customer seen before T): point-in-time, it uses only
  what was known at T, and no labels (BG/NBD is unsupervised);
* per customer: ``1 - P(alive at T)`` (``conditional_probability_alive``), the expected purchases in the
  next ``horizon`` days (``conditional_expected_number_of_purchases_up_to_time``), and the probability of
  dropping out within the horizon *given alive at T*: BG/NBD's probability of an inactivity-churn label
  (a last purchase within the horizon) for a customer known to be alive (see :func:`_drop_within`);
* the same three with the parameters of one fit at ``fit_once_day`` (the end of the training period),
  applied to each T's summary: the variant that fits nothing after the training period.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

LIFETIMES = "lifetimes==0.11.3"
#: lifetimes 0.11.3 and its dependencies, pinned: the set checked to import, fit and score on CDNOW.
PINS = (LIFETIMES, "numpy==2.4.6", "scipy==1.17.1", "pandas==3.1.1", "autograd==1.9.1", "dill==0.4.1",
        "python-dateutil==4.0.0", "tzdata==2026.6")


def lifetimes_python(cache: Path) -> Path:
    """The interpreter of the cached lifetimes venv, created (with :data:`PINS`) when missing or stale."""
    venv = cache / f"lifetimes-0.11.3-py{sys.version_info[0]}{sys.version_info[1]}"
    python = venv / "bin" / "python"
    stamp = venv / ".pins"
    if python.is_file() and stamp.is_file() and stamp.read_text() == "\n".join(PINS):
        return python
    print(f"  creating the lifetimes venv in {venv} (once; {', '.join(PINS)})", file=sys.stderr, flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter the bench's own venv is made of
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS], check=True)
    stamp.write_text("\n".join(PINS))
    return python


def bgnbd_scores(cache: Path, cust: Any, day: Any, obs_days: Any, fit_once_day: int, horizon_days: int,
                 workdir: Path) -> dict[str, Any]:
    """BG/NBD per (T, customer seen before T) for T in ``obs_days``: see the module docstring.

    ``cust`` (int customer index) and ``day`` (int day number) are one entry per purchase. Returns arrays
    ``t``, ``cust`` and one per score (``p_dead``, ``expected``, ``p_drop``, and ``*_once``), plus the
    fitted parameters per T (``params``: r, alpha, a, b; ``params_once``)."""
    import numpy as np

    src, dst = workdir / "bgnbd_in.npz", workdir / "bgnbd_out.npz"
    np.savez(src, cust=np.asarray(cust, dtype=np.int64), day=np.asarray(day, dtype=np.int64),
             obs_days=np.asarray(obs_days, dtype=np.int64), fit_once_day=np.int64(fit_once_day),
             horizon=np.int64(horizon_days))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([str(lifetimes_python(cache)), str(Path(__file__).resolve()), str(src), str(dst)], check=True,
                   env=env)
    with np.load(dst) as z:
        return {k: z[k] for k in z.files}


# ---- the worker, run inside the lifetimes venv ----------------------------------------------------------
def _drop_within(fitter: Any, x: Any, T: Any, h: float) -> Any:
    """P(the customer drops out within ``h`` days | alive at T) under BG/NBD.

    Alive at T after x repeat purchases, the posteriors are λ ~ Gamma(r + x, α + T) and p ~ Beta(a, b + x),
    independent; while alive, purchases are Poisson(λ) and each is the last with probability p, so the
    dropout time from T is exponential with rate λp. Hence P(alive at T + h | alive at T) =
    E_p[(1 + p h / (α + T))^-(r + x)] = 2F1(r + x, a; a + b + x; -h / (α + T)) (Euler's integral), and
    the probability asked is one minus that. Checked against quadrature on a few customers at every call.
    """
    import numpy as np
    from scipy import integrate, special, stats

    r, alpha, a, b = (float(fitter.params_[k]) for k in ("r", "alpha", "a", "b"))
    x, T = np.asarray(x, dtype=np.float64), np.asarray(T, dtype=np.float64)
    survive = special.hyp2f1(r + x, a, a + b + x, -h / (alpha + T))
    for i in np.linspace(0, x.size - 1, min(5, x.size)).astype(int):
        q = integrate.quad(lambda p: stats.beta.pdf(p, a, b + x[i]) * (1 + p * h / (alpha + T[i])) ** -(r + x[i]),
                           0, 1)[0]
        if not abs(q - survive[i]) < 1e-5:
            raise RuntimeError(f"2F1 survival {survive[i]} differs from quadrature {q} (x={x[i]}, T={T[i]})")
    return 1.0 - survive


def _worker(src: str, dst: str) -> None:
    import warnings

    import numpy as np
    import pandas as pd
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import summary_data_from_transaction_data

    warnings.simplefilter("ignore", RuntimeWarning)
    with np.load(src) as z:
        cust, day, obs_days = z["cust"], z["day"], z["obs_days"]
        fit_once_day, h = int(z["fit_once_day"]), float(z["horizon"])
    tx = pd.DataFrame({"customer": cust, "date": pd.to_datetime(day, unit="D")})

    def summary(t_day: int) -> pd.DataFrame:
        before = tx[tx["date"] < pd.Timestamp(t_day, unit="D")]  # strictly before T
        return summary_data_from_transaction_data(before, "customer", "date",
                                                  observation_period_end=pd.Timestamp(t_day, unit="D"), freq="D")

    def fit(s: pd.DataFrame) -> Any:
        return BetaGeoFitter(penalizer_coef=0.0).fit(s["frequency"], s["recency"], s["T"])

    def scores(f: Any, s: pd.DataFrame) -> dict[str, np.ndarray]:
        x, rec, T = (s[c].to_numpy(np.float64) for c in ("frequency", "recency", "T"))
        return {"p_dead": 1.0 - np.asarray(f.conditional_probability_alive(x, rec, T), dtype=np.float64),
                "expected": np.asarray(f.conditional_expected_number_of_purchases_up_to_time(h, x, rec, T),
                                       dtype=np.float64),
                "p_drop": _drop_within(f, x, T, h)}

    def params(f: Any) -> list[float]:
        return [float(f.params_[k]) for k in ("r", "alpha", "a", "b")]

    once = fit(summary(fit_once_day))
    out: dict[str, list[np.ndarray]] = {}
    fitted = []
    for t_day in obs_days.tolist():
        s = summary(int(t_day))
        f = fit(s)
        fitted.append(params(f))
        parts = {"t": np.full(len(s), t_day, dtype=np.int64), "cust": s.index.to_numpy(np.int64),
                 **scores(f, s), **{f"{k}_once": v for k, v in scores(once, s).items()}}
        for k, v in parts.items():
            out.setdefault(k, []).append(v)
        print(f"  BG/NBD at {pd.Timestamp(int(t_day), unit='D').date()}: {len(s):,} customers, r {fitted[-1][0]:.3f} alpha {fitted[-1][1]:.2f} "
              f"a {fitted[-1][2]:.3f} b {fitted[-1][3]:.3f}", file=sys.stderr, flush=True)
    np.savez(dst, **{k: np.concatenate(v) for k, v in out.items()}, params=np.asarray(fitted),
             params_once=np.asarray(params(once)))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
