"""Cutouts from the Legacy Surveys cutout service (``fits-cutout``), politely.

URL: ``<base_url>?ra=..&dec=..&layer=ls-dr10&pixscale=0.262&bands=grz&size=101``; the
response is a FITS file whose primary HDU is (n_bands, size, size) in nanomaggies.
Requests go only to the configured origin (scheme, host and port): the first URL is
checked (anything else raises), and redirects are not followed by the HTTP library but
one by one here, only while they stay on that origin (at most ``MAX_REDIRECTS``); a
redirect elsewhere is a failure ``http_redirect_offhost`` and nothing is cached.  Each
request has a timeout.  Connection errors, timeouts and 5xx answers are retried by
urllib3's ``Retry`` (mounted on the session; urllib3's exponential backoff with factor
``backoff_s``; a server's Retry-After is honoured up to ``RETRY_AFTER_MAX_S``); truncated
or unreadable bodies are retried here with the same backoff.
Both share one budget of ``retries`` retries per cutout, after which the cutout is a
failure with the last reason.  Rate limit: a minimum interval ``min_interval_s`` separates
every request sent to the service (first tries, redirects followed and urllib3's retries
alike) across all processes of this machine (``lensaudit.cutouts.ratelimit``: a lock file
per service origin in ``rate_lock_dir``, by default the cache directory, else the system
temp dir), so N Spark tasks on one machine share one rate; on a cluster of several
machines each has its own, and the per-machine interval must be configured (nodes x the
service's interval).  ``shared_rate=False`` keeps the interval per process.  With a global rate over N machines
the interval is N / rate (``ratelimit.node_interval_s``, set by the Spark cutouts job).
``run_retry_budget`` (with ``run_key``): the retries of every cutout of one run on this
machine draw on one shared count as well (``ratelimit.SharedRetryBudget``); once it is spent,
a failing cutout is not retried and its reason ends in ``run_retry_budget_exhausted``.
Successful bodies are cached on disk by the SHA-256 of the URL.  A body longer than
``max_body_bytes`` (float64 pixels plus 1 MiB) is refused before it is held in memory
(``http_body_too_large``, not retried).
"""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlparse

import numpy as np
from urllib3.util.retry import Retry

from lensaudit.cutouts.ratelimit import (ProcessRateLimit, SharedRateLimit, SharedRetryBudget, lock_path_for,
                                         retry_budget_path_for)
from lensaudit.cutouts.result import Cutout
from lensaudit.survey.instrument import BANDS, PIXSCALE_ARCSEC, STAMP_PIX

DEFAULT_BASE_URL = "https://www.legacysurvey.org/viewer/fits-cutout"
MAX_REDIRECTS = 5
#: requests to the service at most one per this interval per machine (all processes together)
DEFAULT_MIN_INTERVAL_S = 0.2
RETRY_AFTER_MAX_S = 60.0
MAX_HEADER_BYTES = 2**20  # FITS headers and padding allowed beyond the pixel data


class _BodyTooLarge(Exception):
    pass


def max_body_bytes(n_bands: int, size: int) -> int:
    """The largest response read for one cutout: float64 pixels plus ``MAX_HEADER_BYTES``."""
    return 8 * n_bands * size * size + MAX_HEADER_BYTES


def _read_body(resp, limit: int) -> bytes:
    """The body, refusing (``_BodyTooLarge``) a declared or actual length over ``limit``
    before holding it in memory."""
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge(f"http_body_too_large: Content-Length {declared} > {limit}")
    chunks, n = [], 0
    for chunk in resp.iter_content(chunk_size=1 << 16):
        n += len(chunk)
        if n > limit:
            raise _BodyTooLarge(f"http_body_too_large: more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_REDIRECTS = (301, 302, 303, 307, 308)


class _Budget:
    """Retries used so far by one cutout (urllib3's retries and the body retries here), and the
    run's shared budget (``SharedRetryBudget`` or None) that each retry also draws on."""

    def __init__(self, limit: int, run=None):
        self.limit, self.used, self.run, self.run_exhausted = limit, 0, run, False

    def draw_run(self) -> bool:
        """Take one retry from the run's budget; False (and remembered) once it is spent."""
        if self.run is not None and not self.run_exhausted and not self.run.take():
            self.run_exhausted = True
        return not self.run_exhausted


class _BudgetRetry(Retry):
    """urllib3 ``Retry`` that also counts into a per-cutout ``_Budget`` and is exhausted
    when the budget is."""

    budget: _Budget | None = None
    limiter = None  # the source's rate limit, waited on before each retry is sent

    def new(self, **kw):
        out = super().new(**kw)
        out.budget, out.limiter = self.budget, self.limiter
        return out

    def sleep(self, response=None) -> None:
        super().sleep(response)  # backoff / Retry-After
        if self.limiter is not None:
            self.limiter.wait()

    def increment(self, *args, **kwargs):
        from urllib3.exceptions import MaxRetryError

        if self.budget is None:
            return super().increment(*args, **kwargs)
        if self.budget.used < self.budget.limit:
            self.budget.draw_run()  # a spent run budget exhausts this retry (is_exhausted)
        self.budget.used += 1
        try:
            return super().increment(*args, **kwargs)
        except MaxRetryError:
            self.budget.used -= 1  # refused: no request was made
            raise

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or (self.budget is not None and (
            self.budget.used > self.budget.limit or self.budget.run_exhausted))


class HttpCutoutSource:
    def __init__(self, base_url: str = DEFAULT_BASE_URL, cache_dir: str | Path | None = None, layer: str = "ls-dr10",
                 pixscale: float = PIXSCALE_ARCSEC, timeout_s: float = 30.0, retries: int = 4, backoff_s: float = 1.0,
                 min_interval_s: float = DEFAULT_MIN_INTERVAL_S, session=None, shared_rate: bool = True,
                 rate_lock_dir: str | Path | None = None, run_retry_budget: int | None = None, run_key: str = ""):
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"cutout service URL must be http(s)://host/..., got {base_url!r}")
        self.base_url, self.host = base_url, parsed.hostname
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.layer, self.pixscale = layer, pixscale
        self.timeout_s, self.retries, self.backoff_s, self.min_interval_s = timeout_s, retries, backoff_s, min_interval_s
        if shared_rate:
            if rate_lock_dir is None and cache_dir and "://" not in str(cache_dir):
                rate_lock_dir = cache_dir
            scheme, host, port = self._origin(base_url)
            self.rate_limit = SharedRateLimit(lock_path_for(f"{scheme}://{host}:{port}", rate_lock_dir), min_interval_s)
        else:
            self.rate_limit = ProcessRateLimit(min_interval_s)
        self.run_budget = None
        if run_retry_budget is not None:
            if not run_key:
                raise ValueError("a run retry budget needs the run's key (run_key)")
            scheme, host, port = self._origin(base_url)
            lock_dir = rate_lock_dir if rate_lock_dir is not None else (
                cache_dir if cache_dir and "://" not in str(cache_dir) else None)
            self.run_budget = SharedRetryBudget(retry_budget_path_for(f"{scheme}://{host}:{port}", run_key, lock_dir),
                                                run_retry_budget)
        if session is None:
            import requests

            session = requests.Session()
        self.session = session
        self._adapter = None
        if hasattr(session, "mount"):
            from requests.adapters import HTTPAdapter

            self._adapter = HTTPAdapter(max_retries=self._retry(_Budget(retries)))
            session.mount(f"{parsed.scheme}://{parsed.netloc}", self._adapter)

    def _retry(self, budget: _Budget) -> Retry:
        r = _BudgetRetry(total=self.retries, connect=self.retries, read=self.retries, redirect=0, status=self.retries,
                         other=self.retries, allowed_methods=frozenset({"GET"}),
                         status_forcelist=(500, 502, 503, 504), backoff_factor=self.backoff_s, raise_on_status=False,
                         raise_on_redirect=False, respect_retry_after_header=True,
                         retry_after_max=RETRY_AFTER_MAX_S)
        r.budget, r.limiter = budget, self.rate_limit
        return r

    def url(self, ra: float, dec: float, bands: str, size: int) -> str:
        q = urlencode({"ra": f"{ra:.8f}", "dec": f"{dec:.8f}", "layer": self.layer, "pixscale": self.pixscale,
                       "bands": bands, "size": size})
        return f"{self.base_url}?{q}"

    @staticmethod
    def _origin(url: str) -> tuple:
        p = urlparse(url)
        try:
            port = p.port or {"http": 80, "https": 443}.get(p.scheme)
        except ValueError:  # a malformed port
            port = None
        return p.scheme, (p.hostname or "").lower(), port

    def _checked(self, url: str) -> str:
        if self._origin(url) != self._origin(self.base_url):
            raise ValueError(f"refusing a request to {urlparse(url).netloc!r}: only {urlparse(self.base_url).netloc!r} "
                             f"is configured")
        return url

    @staticmethod
    def _parse(body: bytes, bands: str, size: int) -> np.ndarray:
        from astropy.io import fits

        with fits.open(io.BytesIO(body)) as h:
            data = h[0].data
            if data is None:
                raise ValueError("empty primary HDU")
            data = np.asarray(data, dtype=np.float32)
        if data.ndim == 2 and len(bands) == 1:
            data = data[None]
        if data.shape != (len(bands), size, size):
            raise ValueError(f"wrong shape {data.shape}")
        return data

    def _get(self, url: str):
        """One GET with redirects followed only on the configured host: (response, "") or
        (None, reason)."""
        for _ in range(MAX_REDIRECTS + 1):
            self.rate_limit.wait()
            resp = self.session.get(url, timeout=self.timeout_s, allow_redirects=False, stream=True)
            if resp.status_code not in _REDIRECTS:
                return resp, ""
            loc = resp.headers.get("Location")
            resp.close()
            if not loc:
                return None, f"http_{resp.status_code}_without_location"
            nxt = urljoin(url, loc)
            if self._origin(nxt) != self._origin(self.base_url):
                p = urlparse(nxt)
                return None, f"http_redirect_offhost: {p.scheme}://{p.netloc}"
            url = nxt
        return None, "http_too_many_redirects"

    def cutout(self, ra: float, dec: float, bands: str = BANDS, size: int = STAMP_PIX) -> Cutout:
        import requests
        from urllib3.exceptions import MaxRetryError, ReadTimeoutError

        if not (np.isfinite(ra) and np.isfinite(dec)):
            return Cutout.failure(bands, "invalid_coords")
        url = self._checked(self.url(ra, dec, bands, size))
        meta = {"ra": float(ra), "dec": float(dec), "source": "http", "cutout_url": url, "layer": self.layer}
        cache = self.cache_dir / (hashlib.sha256(url.encode()).hexdigest() + ".fits") if self.cache_dir else None
        if cache is not None and cache.exists():
            try:
                return Cutout(True, bands, self._parse(cache.read_bytes(), bands, size), "", meta | {"cached": True})
            except (OSError, ValueError, TypeError):
                cache.unlink()  # a bad cache entry is refetched
        budget = _Budget(self.retries, self.run_budget)
        if self._adapter is not None:
            self._adapter.max_retries = self._retry(budget)
        reason, requests_made = "", 0
        while True:
            if requests_made:  # a body-level retry (urllib3 retried the rest)
                if budget.used >= budget.limit or not budget.draw_run():
                    break
                budget.used += 1
                time.sleep(self.backoff_s * 2 ** (budget.used - 1))
            used_before = budget.used
            requests_made += 1
            resp, why, spent = None, "", False
            try:
                resp, why = self._get(url)
            except requests.Timeout:
                reason = "http_timeout"
            except requests.exceptions.ChunkedEncodingError:
                reason = "http_truncated_body"  # the server closed before Content-Length bytes
            except requests.RequestException as exc:
                inner = exc.args[0] if exc.args else None
                if isinstance(inner, MaxRetryError) and isinstance(inner.reason, ReadTimeoutError):
                    reason = "http_timeout"
                else:
                    reason = f"http_connection_error: {type(exc).__name__}"
                spent = isinstance(inner, MaxRetryError)  # urllib3 spent the budget
            requests_made += budget.used - used_before  # urllib3's retries were requests too
            if spent:
                break
            if resp is None and not why:
                continue
            if resp is None:
                return Cutout.failure(bands, why, **meta, attempts=requests_made)  # not retried, not cached
            if resp.status_code != 200:
                resp.close()
                if resp.status_code >= 500:
                    reason = f"http_{resp.status_code}"
                    break  # urllib3 retried 5xx until the budget was spent
                return Cutout.failure(bands, f"http_{resp.status_code}", **meta)  # 4xx: not retried
            try:
                body = _read_body(resp, max_body_bytes(len(bands), size))
            except _BodyTooLarge as exc:
                resp.close()
                return Cutout.failure(bands, str(exc), **meta, attempts=requests_made)  # not retried, not cached
            except requests.exceptions.ChunkedEncodingError:
                reason = "http_truncated_body"
                continue
            except requests.RequestException as exc:
                reason = "http_timeout" if "timed out" in str(exc).lower() else \
                    f"http_connection_error: {type(exc).__name__}"
                continue
            expected = resp.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and int(expected) != len(body):
                reason = "http_truncated_body"
                continue
            try:
                data = self._parse(body, bands, size)
            except (OSError, ValueError, TypeError) as exc:
                reason = f"bad_fits: {exc}"
                continue
            if cache is not None:
                from lensaudit.store import atomic_path

                with atomic_path(cache) as tmp:
                    tmp.write_bytes(body)
            return Cutout(True, bands, data, "", meta | {"attempts": requests_made})
        reason = reason or "http_failed"
        if budget.run_exhausted:
            reason += "; run_retry_budget_exhausted"
        return Cutout.failure(bands, reason, **meta, attempts=requests_made)
