"""Candidate photos: which uploads are accepted and what is kept of them.

Pillow does the decoding and encoding; this module only decides the rules:

* **Formats by content**: JPEG, PNG and WebP, recognised by their signature bytes (the name
  and the declared media type decide nothing). Anything else is refused.
* **Limits**: at most :data:`MAX_PHOTO_BYTES` bytes per file and :data:`MAX_PIXELS` pixels
  per image, read from the header before any pixel is decoded, so a decompression bomb
  (a small file that claims a huge canvas) is refused without being decoded. Pillow's own
  check (``DecompressionBombWarning``/``Error``) is never reached for a refused size, and an
  error it raises anyway is a refusal like any other. At least :data:`MIN_SIDE` pixels on
  each side (the card size).
* **What is kept**: never the upload. The first frame is decoded (a JPEG at the smallest of
  1/1-1/8 scale that still covers every size), turned upright by its EXIF orientation
  (``ImageOps.exif_transpose``), shrunk by a whole factor, flattened onto white if it has
  transparency, converted to sRGB (by its ICC profile when it has one), then cropped to
  each of :data:`SIZES` and re-encoded as WebP with no EXIF, XMP or ICC data. The public
  page shows the ``card`` size in a 56 px circle on each card and the ``profile`` size in a
  96×120 px (128×160 px on wide screens) portrait in the profile dialog
  (``voting/static/style.css``): the sizes hold about 3.4 and 3.75–5 device pixels per CSS
  pixel.
* **ZIP archives** (:func:`read_photo_zip`): at most :data:`MAX_ZIP_BYTES` bytes,
  :data:`MAX_ZIP_ENTRIES` entries and :data:`MAX_ZIP_UNPACKED` unpacked bytes; each entry is
  named ``CODE.jpg``, ``CODE.jpeg``, ``CODE.png`` or ``CODE.webp`` by a candidate code of the
  round (case-insensitive), in the archive's root or a folder of it. A name that leaves the
  folder (``..``) or is absolute is refused. Every entry is checked and rendered before
  anything is stored; one bad entry refuses the whole archive with the error of each.

Errors are :class:`voting.core.errors.Invalid`: ``invalid_photo`` (one file),
``invalid_photos`` (entries of an archive, ``errors[{name, message}]``), ``invalid_zip``
(the archive itself).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from typing import Literal

import msgspec
from PIL import (
    Image,
    ImageCms,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)

from voting.core.errors import Invalid

#: Bytes of one uploaded image (a 50-megapixel camera JPEG is 15-25 MB).
MAX_PHOTO_BYTES = 20_000_000
#: Pixels (width × height) of one image, checked before decoding: a 50-megapixel camera photo
#: passes, the 108-megapixel bomb of ``data/photos-bad.zip`` does not. Decoding the largest
#: accepted PNG takes about 200 MB of memory, one image at a time.
MAX_PIXELS = 50_000_000
#: Shortest accepted side in pixels: the card size, never upscaled.
MIN_SIDE = 192
#: Bytes of one ZIP archive, of its entries and of all its entries unpacked.
MAX_ZIP_BYTES = 100_000_000
MAX_ZIP_ENTRIES = 200
MAX_ZIP_UNPACKED = 300_000_000
#: What is stored: WebP at this quality (0-100).
MEDIA_TYPE = "image/webp"
WEBP_QUALITY = 82
#: Where the crops are centred (0 left/top, 1 right/bottom): faces sit above the middle of a
#: portrait.
CROP_CENTRE = (0.5, 0.3)


class PhotoSize(msgspec.Struct, frozen=True):
    """One stored size: ``name`` as in ``?size=``, ``width``×``height`` in pixels (cropped to
    fill; a smaller source of the right aspect is kept at its own size, never upscaled)."""

    name: str
    width: int
    height: int


#: The sizes the public page needs (see the module).
SIZES: dict[str, PhotoSize] = {
    "card": PhotoSize("card", 192, 192),
    "profile": PhotoSize("profile", 480, 600),
}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)
#: A size a request may name (one of :data:`SIZES`).
SizeName = Literal["card", "profile"]
#: The size served when a request names none.
DEFAULT_SIZE: SizeName = "profile"


class Rendition(msgspec.Struct, frozen=True):
    """One encoded size: ``data`` (WebP bytes), ``width``×``height`` pixels, ``sha256`` (hex
    of ``data``, the ETag's source)."""

    size: str
    media_type: str
    width: int
    height: int
    data: bytes
    sha256: str


class Photo(msgspec.Struct, frozen=True):
    """An accepted upload: its ``format`` (``JPEG``, ``PNG``, ``WEBP``), its size in pixels and
    bytes, and its :data:`SIZES` renditions. ``version``: 16 hex digits naming this set of
    renditions (a new upload gets a new one), for ``?v=`` in photo URLs."""

    format: str
    width: int
    height: int
    bytes: int
    renditions: tuple[Rendition, ...]
    version: str


class PhotoRefused(Exception):
    """Why one image is refused (``message``: English, for people)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_OPENERS: tuple[tuple[Callable[[bytes], bool], Callable[[io.BytesIO], ImageFile.ImageFile]], ...]
_OPENERS = (
    (lambda b: b[:3] == b"\xff\xd8\xff", JpegImagePlugin.JpegImageFile),
    (lambda b: b[:8] == b"\x89PNG\r\n\x1a\n", PngImagePlugin.PngImageFile),
    (lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP", WebPImagePlugin.WebPImageFile),
)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _open(data: bytes) -> ImageFile.ImageFile:
    """The image's header parsed by the plugin of its signature; no pixel decoded. Calling the
    plugin rather than ``Image.open`` keeps Pillow's bomb warning from firing before our own
    pixel limit is checked."""
    for accepts, plugin in _OPENERS:
        if accepts(data):
            try:
                return plugin(io.BytesIO(data))
            except Image.DecompressionBombError:
                raise
            except Exception:  # Pillow raises many kinds on a malformed header
                raise PhotoRefused("the image is damaged: its header cannot be read") from None
    raise PhotoRefused("not a JPEG, PNG or WebP image (the content decides, not the name)")


def _reduced(im: Image.Image, side: int) -> Image.Image:
    """``im`` shrunk by a whole factor (box filter, fast) while its shorter side stays at least
    ``side`` pixels: what is cropped and resized afterwards is small, whatever the upload."""
    factor = min(im.width, im.height) // side
    if factor < 2:
        return im
    if im.mode not in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F"):  # P and 1 cannot be reduced
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    return im.reduce(factor)


def _flatten(im: Image.Image) -> Image.Image:
    """``im`` without transparency (composited onto white) in a mode an ICC transform takes."""
    if im.has_transparency_data:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("RGB")
    if im.mode in ("RGB", "L", "CMYK"):
        return im
    return im.convert("RGB")


def _srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """``im`` as 8-bit sRGB: through its ICC profile when it has a usable one, else as is
    (untagged images are taken to be sRGB already)."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, source, _SRGB, outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken or mismatched profile: the pixels are used as they are
    return im.convert("RGB")


def _crop(im: Image.Image, size: PhotoSize) -> Image.Image:
    """``im`` cropped to ``size``'s aspect around :data:`CROP_CENTRE` and scaled down to it
    (a source smaller than ``size`` keeps its own resolution)."""
    scale = max(size.width / im.width, size.height / im.height)
    if scale > 1:
        box = (max(1, round(size.width / scale)), max(1, round(size.height / scale)))
    else:
        box = (size.width, size.height)
    return ImageOps.fit(im, box, method=Image.Resampling.LANCZOS, centering=CROP_CENTRE)


def _encode(im: Image.Image, size: str) -> Rendition:
    clean = Image.new("RGB", im.size)
    clean.paste(im)  # a new image: no info (EXIF, ICC, XMP) carried over from the upload
    buf = io.BytesIO()
    clean.save(buf, "WEBP", quality=WEBP_QUALITY, method=4)
    data = buf.getvalue()
    return Rendition(
        size=size,
        media_type=MEDIA_TYPE,
        width=clean.width,
        height=clean.height,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def render(data: bytes) -> Photo:
    """Check one uploaded image and render its :data:`SIZES` (see the module's rules).

    ``data``: the file's bytes. Raises :class:`PhotoRefused` with the reason: empty, over
    :data:`MAX_PHOTO_BYTES`, not JPEG/PNG/WebP by content, over :data:`MAX_PIXELS` (a
    decompression bomb), under :data:`MIN_SIDE`, damaged or truncated.
    """
    if not data:
        raise PhotoRefused("the file is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRefused(
            f"the file is {_megabytes(len(data))}; at most {_megabytes(MAX_PHOTO_BYTES)} "
            "is accepted"
        )
    try:
        im = _open(data)
        width, height = im.size
        if width * height > MAX_PIXELS:
            raise PhotoRefused(
                f"the image is {width}×{height} pixels ({width * height / 1e6:.1f} megapixels); "
                f"at most {MAX_PIXELS / 1e6:.0f} megapixels are accepted (a decompression "
                "bomb, or a photo to scale down first)"
            )
        if min(width, height) < MIN_SIDE:
            raise PhotoRefused(
                f"the image is {width}×{height} pixels; a photo needs at least "
                f"{MIN_SIDE}×{MIN_SIDE}"
            )
        fmt = str(im.format)
        largest = max(max(s.width, s.height) for s in SIZES.values())
        if fmt == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when that still covers every size
            im.draft("RGB" if im.mode == "RGB" else None, (largest, largest))
        im.load()
        icc = im.info.get("icc_profile")
        ImageOps.exif_transpose(im, in_place=True)  # upright first (no copy when it already is)
        upright: Image.Image = im
        if upright.mode.startswith("I"):  # 16-bit grey PNG: 0-65535 to 0-255 (convert clips)
            upright = upright.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        small = _reduced(upright, largest)
        rgb = _srgb(_flatten(small), icc if isinstance(icc, bytes) else None)
    except PhotoRefused:
        raise
    except Image.DecompressionBombError:
        raise PhotoRefused(
            f"the image has too many pixels; at most {MAX_PIXELS / 1e6:.0f} megapixels are "
            "accepted (a decompression bomb)"
        ) from None
    except Exception:  # Pillow raises many kinds on damaged pixel data
        raise PhotoRefused("the image is damaged or truncated and cannot be decoded") from None
    renditions = tuple(_encode(_crop(rgb, s), s.name) for s in SIZES.values())
    version = hashlib.sha256("".join(r.sha256 for r in renditions).encode()).hexdigest()[:16]
    return Photo(
        format=fmt,
        width=width,
        height=height,
        bytes=len(data),
        renditions=renditions,
        version=version,
    )


def check_photo(data: bytes) -> Photo:
    """:func:`render`, refusing with :class:`Invalid` ``invalid_photo`` (the reason as
    message)."""
    try:
        return render(data)
    except PhotoRefused as exc:
        raise Invalid("invalid_photo", f"the photo was refused: {exc.message}") from None


_NAME = re.compile(r"(?P<code>[^.]+)\.(?:jpe?g|png|webp)", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")


def _ignored(parts: list[str]) -> bool:
    """Folders, and what archivers add beside the files (macOS resource forks, Finder and
    Explorer caches)."""
    base = parts[-1]
    return base == "" or parts[0] == "__MACOSX" or base in (".DS_Store", "Thumbs.db")


def _entry_code(name: str, codes: dict[str, str]) -> str | None:
    """The candidate code an entry's ``name`` gives, None for an entry to skip (see
    :func:`_ignored`); raises :class:`PhotoRefused` for a name that is not allowed."""
    path = name.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path):
        raise PhotoRefused("an absolute path is not allowed; put the photos in the archive")
    parts = path.split("/")
    if ".." in parts:
        raise PhotoRefused("the path leaves the archive's folder ('..' is not allowed)")
    if _ignored(parts):
        return None
    match = _NAME.fullmatch(parts[-1])
    if match is None:
        raise PhotoRefused(
            "name each photo CODE.jpg, CODE.png or CODE.webp, CODE being the candidate's code"
        )
    code = codes.get(match["code"].casefold())
    if code is None:
        raise PhotoRefused(f"no candidate of this round has the code {match['code']!r}")
    return code


def _entry_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.flag_bits & 0x1:
        raise PhotoRefused("encrypted entries are not accepted")
    if info.file_size > MAX_PHOTO_BYTES:
        raise PhotoRefused(
            f"the file is {_megabytes(info.file_size)}; at most "
            f"{_megabytes(MAX_PHOTO_BYTES)} is accepted"
        )
    try:
        with archive.open(info) as f:
            data = f.read(MAX_PHOTO_BYTES + 1)  # the header's size is not trusted
    except NotImplementedError:
        raise PhotoRefused("the entry's compression method is not supported") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise PhotoRefused("the entry is damaged and cannot be unpacked") from None
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRefused(f"the file is over {_megabytes(MAX_PHOTO_BYTES)}")
    return data


def read_photo_zip(data: bytes, codes: Iterable[str]) -> dict[str, Photo]:
    """Check and render every photo of a ZIP archive (see the module's rules).

    ``data``: the archive's bytes; ``codes``: the round's candidate codes. Returns candidate
    code → :class:`Photo` for every photo entry. Raises :class:`Invalid` ``invalid_zip`` when
    the archive is not a ZIP, is over its limits or holds no photo; ``invalid_photos`` with
    ``errors[{name, message}]`` (the entry's name as stored) when any entry is refused, in
    which case nothing of the archive is to be stored.
    """
    if len(data) > MAX_ZIP_BYTES:
        raise Invalid(
            "invalid_zip",
            f"the archive is {_megabytes(len(data))}; at most {_megabytes(MAX_ZIP_BYTES)}",
        )
    # the central directory is parsed whole by zipfile: bound it before it is read
    if data.count(b"PK\x01\x02") > MAX_ZIP_ENTRIES:
        raise Invalid("invalid_zip", f"the archive has more than {MAX_ZIP_ENTRIES} entries")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise Invalid("invalid_zip", "the body is not a readable ZIP archive") from None
    if len(entries) > MAX_ZIP_ENTRIES:
        raise Invalid("invalid_zip", f"the archive has more than {MAX_ZIP_ENTRIES} entries")
    unpacked = sum(i.file_size for i in entries)
    if unpacked > MAX_ZIP_UNPACKED:
        raise Invalid(
            "invalid_zip",
            f"the archive unpacks to {_megabytes(unpacked)}; at most "
            f"{_megabytes(MAX_ZIP_UNPACKED)}",
        )
    by_fold = {c.casefold(): c for c in codes}
    errors: list[dict[str, str]] = []
    photos: dict[str, Photo] = {}
    names: dict[str, str] = {}
    for info in entries:
        try:
            code = _entry_code(info.filename, by_fold)
            if code is None:
                continue
            if code in names:
                raise PhotoRefused(
                    f"a second photo of {code} (the first is {names[code]!r}); send one"
                )
            names[code] = info.filename
            photos[code] = render(_entry_bytes(archive, info))
        except PhotoRefused as exc:
            errors.append({"name": info.filename, "message": exc.message})
    if errors:
        raise Invalid(
            "invalid_photos",
            f"the archive was refused: {len(errors)} of its entries are not accepted; "
            "nothing was stored",
            details={"errors": errors},
        )
    if not photos:
        raise Invalid("invalid_zip", "the archive holds no photo named CODE.jpg/png/webp")
    return photos
