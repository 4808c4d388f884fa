"""Cutouts from the Legacy Surveys cutout service (``fits-cutout``), politely.

URL: ``<base_url>?ra=..&dec=..&layer=ls-dr10&pixscale=0.262&bands=grz&size=101``; the
response is a FITS file whose primary HDU is (n_bands, size, size) in nanomaggies.
Requests go only to the configured host (anything else raises); each request has a
timeout; 5xx answers, timeouts, connection errors and truncated or unreadable bodies are
retried with exponential backoff (``backoff_s x 2^k``) up to ``retries`` times, then
returned as a failure with the last reason; a minimum interval separates requests
(rate limit); successful bodies are cached on disk by the SHA-256 of the URL.
"""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from urllib.parse import urlencode, urlparse

import numpy as np

from lensaudit.cutouts.result import STAMP_PIX, Cutout

DEFAULT_BASE_URL = "https://www.legacysurvey.org/viewer/fits-cutout"


class HttpCutoutSource:
    def __init__(self, base_url: str = DEFAULT_BASE_URL, cache_dir: str | Path | None = None, layer: str = "ls-dr10",
                 pixscale: float = 0.262, timeout_s: float = 30.0, retries: int = 4, backoff_s: float = 1.0,
                 min_interval_s: float = 0.2, session=None):
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"cutout service URL must be http(s)://host/..., got {base_url!r}")
        self.base_url, self.host = base_url, parsed.hostname
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.layer, self.pixscale = layer, pixscale
        self.timeout_s, self.retries, self.backoff_s, self.min_interval_s = timeout_s, retries, backoff_s, min_interval_s
        self._last = 0.0
        if session is None:
            import requests

            session = requests.Session()
        self.session = session

    def url(self, ra: float, dec: float, bands: str, size: int) -> str:
        q = urlencode({"ra": f"{ra:.8f}", "dec": f"{dec:.8f}", "layer": self.layer, "pixscale": self.pixscale,
                       "bands": bands, "size": size})
        return f"{self.base_url}?{q}"

    def _checked(self, url: str) -> str:
        if urlparse(url).hostname != self.host:
            raise ValueError(f"refusing a request to {urlparse(url).hostname!r}: only {self.host!r} is configured")
        return url

    def _wait(self):
        dt = time.monotonic() - self._last
        if dt < self.min_interval_s:
            time.sleep(self.min_interval_s - dt)
        self._last = time.monotonic()

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

    def cutout(self, ra: float, dec: float, bands: str = "grz", size: int = STAMP_PIX) -> Cutout:
        import requests

        if not (np.isfinite(ra) and np.isfinite(dec)):
            return Cutout.failure(bands, "invalid_coords")
        url = self._checked(self.url(ra, dec, bands, size))
        meta = {"ra": float(ra), "dec": float(dec), "source": "http", "cutout_url": url, "layer": self.layer}
        cache = self.cache_dir / (hashlib.sha256(url.encode()).hexdigest() + ".fits") if self.cache_dir else None
        if cache is not None and cache.exists():
            try:
                return Cutout(True, bands, self._parse(cache.read_bytes(), bands, size), "", meta | {"cached": True})
            except (OSError, ValueError):
                cache.unlink()  # a bad cache entry is refetched
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            self._wait()
            try:
                resp = self.session.get(url, timeout=self.timeout_s)
            except requests.Timeout:
                reason = "http_timeout"
                continue
            except requests.exceptions.ChunkedEncodingError:
                reason = "http_truncated_body"  # the server closed before Content-Length bytes
                continue
            except requests.RequestException as exc:
                reason = f"http_connection_error: {type(exc).__name__}"
                continue
            if resp.status_code >= 500:
                reason = f"http_{resp.status_code}"
                continue
            if resp.status_code != 200:
                return Cutout.failure(bands, f"http_{resp.status_code}", **meta)  # 4xx: not retried
            body = resp.content
            expected = resp.headers.get("Content-Length")
            if expected is not None and int(expected) != len(body):
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
            return Cutout(True, bands, data, "", meta | {"attempts": attempt + 1})
        return Cutout.failure(bands, reason or "http_failed", **meta, attempts=self.retries + 1)
