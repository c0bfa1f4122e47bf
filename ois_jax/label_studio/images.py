"""The images of Label Studio tasks, fetched as Label Studio serves them.

A task's image value is one of:
- `/data/upload/...` (an uploaded file) or any other path on the Label Studio server: fetched from
  the server (`label_studio_url`, else $LABEL_STUDIO_URL) with `Authorization: Token <api_key>`
  (else $LABEL_STUDIO_API_KEY), the variables Label Studio's SAM backend reads;
- `/data/local-files/?d=REL` (local storage): read from `local_files_root/REL` when a root is
  given (else $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT), otherwise fetched from the server;
- `http(s)://...`: fetched when the host is the Label Studio server's (with the token) or one of
  `allowed_hosts` (without it); any other host is refused, redirects included;
- `data:image/...;base64,...`: decoded in place.

Images over `max_pixels` are refused from their header, before any pixel is decoded; downloads
over `max_bytes` are cut off. Every failure is an `ImageFetchError` naming the image, with the
HTTP status the backend answers.
"""

import base64
import binascii
import io
import os
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
from PIL import Image

from ois_jax import io as ois_io
from ois_jax.errors import ConfigError, ImageError

URL_ENV, KEY_ENV, ROOT_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
MAX_PIXELS = 40_000_000
MAX_BYTES = 100 * 2**20


class ImageFetchError(ImageError):
  """An image that cannot be fetched, read or decoded, or is too large; `status` is the HTTP
  status the backend answers with."""

  def __init__(self, message: str, status: int = 422):
    super().__init__(message)
    self.status = status


class ImageSource:
  """Fetches task images: `fetch(value) -> (H, W, 3) uint8`."""

  def __init__(self, label_studio_url: str | None = None, api_key: str | None = None,
               allowed_hosts=(), local_files_root: str | None = None, max_pixels: int = MAX_PIXELS,
               max_bytes: int = MAX_BYTES, timeout_s: float = 30.0):
    url = label_studio_url or os.environ.get(URL_ENV) or None
    if url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
      raise ConfigError(f"Label Studio URL {url!r}: expected http://HOST:PORT or https://...")
    self.label_studio_url = url.rstrip("/") if url else None
    self.api_key = api_key or os.environ.get(KEY_ENV) or None
    self.allowed_hosts = {h.lower() for h in allowed_hosts}
    self.local_files_root = local_files_root or os.environ.get(ROOT_ENV) or None
    self.max_pixels, self.max_bytes, self.timeout_s = int(max_pixels), int(max_bytes), timeout_s

  def fetch(self, value) -> np.ndarray:
    if not isinstance(value, str) or not value:
      raise ImageFetchError(f"the task's image is {value!r}, not a URL or path", 400)
    shown = value if len(value) < 120 else value[:100] + "..."
    if value.startswith("data:"):
      shown = f"{value.partition(',')[0]},... ({len(value)} characters)"
      data = _data_uri(value, shown)
      if len(data) > self.max_bytes:
        raise ImageFetchError(f"image {shown}: larger than {self.max_bytes // 2**20} MiB", 413)
      return self.decode(data, shown)
    parts = urllib.parse.urlsplit(value)
    if parts.scheme in ("http", "https"):
      host = parts.hostname.lower() if parts.hostname else ""
      if self._is_label_studio(value):
        return self.decode(self._download(value, shown, token=True), shown)
      if host in self.allowed_hosts:
        return self.decode(self._download(value, shown, token=False), shown)
      raise ImageFetchError(f"image {shown}: host {host!r} is not allowed (allow it with --allow-host "
                            f"{host}, or serve the image from Label Studio)", 403)
    if parts.scheme or not value.startswith("/"):
      raise ImageFetchError(f"image {shown}: unsupported URL (expected a Label Studio path such as "
                            "/data/upload/..., http(s)://, or a data: URI)", 400)
    if parts.path.rstrip("/") == "/data/local-files" and self.local_files_root:
      return self.decode(self._local_file(parts, shown), shown)
    if not self.label_studio_url:
      raise ImageFetchError(f"image {shown} is on the Label Studio server, but its URL is unknown: "
                            f"pass --label-studio-url (or set ${URL_ENV}) and --api-key", 422)
    return self.decode(self._download(self.label_studio_url + value, shown, token=True), shown)

  def _is_label_studio(self, url: str) -> bool:
    if not self.label_studio_url:
      return False
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(self.label_studio_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)

  def _allowed(self, url: str) -> bool:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return self._is_label_studio(url) or host in self.allowed_hosts

  def _download(self, url: str, shown: str, token: bool) -> bytes:
    headers = {"User-Agent": "ois-jax-label-studio"}
    if token and self.api_key:
      headers["Authorization"] = f"Token {self.api_key}"
    opener = urllib.request.build_opener(_CheckedRedirects(self))
    try:
      with opener.open(urllib.request.Request(url, headers=headers), timeout=self.timeout_s) as response:
        data = response.read(self.max_bytes + 1)
    except urllib.error.HTTPError as e:
      hint = " (check --api-key)" if e.code in (401, 403) else ""
      raise ImageFetchError(f"image {shown}: the server answered HTTP {e.code}{hint}", 422) from None
    except _Refused as e:
      raise ImageFetchError(f"image {shown}: {e}", 403) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
      reason = getattr(e, "reason", e)
      raise ImageFetchError(f"image {shown}: cannot be fetched ({reason})", 422) from None
    if len(data) > self.max_bytes:
      raise ImageFetchError(f"image {shown}: larger than {self.max_bytes // 2**20} MiB", 413)
    return data

  def _local_file(self, parts, shown: str) -> bytes:
    relative = urllib.parse.parse_qs(parts.query).get("d", [""])[0]
    root = os.path.realpath(self.local_files_root)
    path = os.path.realpath(os.path.join(root, relative))
    if not relative or os.path.commonpath([root, path]) != root:
      raise ImageFetchError(f"image {shown}: not a file under the local-files root", 403)
    if not os.path.isfile(path):
      raise ImageFetchError(f"image {shown}: no such file under the local-files root", 422)
    if os.path.getsize(path) > self.max_bytes:
      raise ImageFetchError(f"image {shown}: larger than {self.max_bytes // 2**20} MiB", 413)
    with open(path, "rb") as f:
      return f.read()

  def decode(self, data: bytes, shown: str) -> np.ndarray:
    """Encoded bytes -> (H, W, 3) uint8, refusing images over max_pixels before decoding."""
    try:
      with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
    except Exception:  # noqa: BLE001 - any reader failure is "not an image" here
      raise ImageFetchError(f"image {shown}: not an image file (Pillow cannot identify it)", 422) from None
    if w * h > self.max_pixels:
      raise ImageFetchError(f"image {shown}: {w}x{h} is {w * h / 1e6:.1f} megapixels, over the limit of "
                            f"{self.max_pixels / 1e6:g} (--max-megapixels)", 413)
    try:
      return ois_io.decode_image(data, what=f"image {shown}")
    except ImageError as e:
      raise ImageFetchError(str(e), 422) from None


class _Refused(OSError):
  pass


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
  """Follows a redirect only to an allowed host."""

  def __init__(self, source: ImageSource):
    self.source = source

  def redirect_request(self, req, fp, code, msg, headers, newurl):
    if not self.source._allowed(newurl):
      raise _Refused(f"redirected to {urllib.parse.urlsplit(newurl).hostname!r}, which is not allowed")
    return super().redirect_request(req, fp, code, msg, headers, newurl)


def _data_uri(value: str, shown: str) -> bytes:
  header, sep, payload = value.partition(",")
  if not sep or not header.endswith(";base64"):
    raise ImageFetchError(f"image {shown}: a data URI must be data:image/...;base64,...", 400)
  try:
    return base64.b64decode(payload, validate=True)
  except (binascii.Error, ValueError):
    raise ImageFetchError(f"image {shown}: the data URI is not valid base64", 400) from None
