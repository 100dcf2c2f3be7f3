"""Reading the PDFs the service makes as a person would: their text, their fonts, page 1 as a
picture (kept in ``tests/artifacts/`` to look at), and the QR codes on it."""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import pypdf
import pypdfium2
import zxingcpp
from PIL import Image

#: Where tests leave the pictures of the documents they make (ignored by git).
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def pdf_text(data: bytes) -> str:
    """The text of every page, NFC-normalised, with runs of whitespace made one space."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    text = " ".join(page.extract_text() for page in reader.pages)
    return " ".join(unicodedata.normalize("NFC", text).split())


def pdf_pages(data: bytes) -> int:
    return len(pypdf.PdfReader(io.BytesIO(data)).pages)


def pdf_fonts(data: bytes) -> set[str]:
    """The base names of the fonts used on every page, without subset tags
    (``LibertinusSerif-Regular``...)."""
    names: set[str] = set()
    for page in pypdf.PdfReader(io.BytesIO(data)).pages:
        fonts = page["/Resources"].get("/Font", {})
        for ref in fonts.values():
            base = str(ref.get_object()["/BaseFont"]).lstrip("/")
            names.add(base.split("+", 1)[-1].removesuffix("-Identity-H"))
    return names


def first_page_png(data: bytes, name: str, scale: float = 2.0) -> Image.Image:
    """Page 1 rendered (``scale`` × 72 dpi), saved as ``tests/artifacts/<name>.png``."""
    document = pypdfium2.PdfDocument(data)
    try:
        image = document[0].render(scale=scale).to_pil()
    finally:
        document.close()
    ARTIFACTS.mkdir(exist_ok=True)
    image.save(ARTIFACTS / f"{name}.png")
    return image


def ink(image: Image.Image) -> float:
    """The share of pixels darker than mid-grey (0 for a blank page)."""
    grey = image.convert("L")
    histogram = grey.histogram()
    return sum(histogram[:128]) / (grey.width * grey.height)


def qr_texts(image: Image.Image) -> list[str]:
    """The text of every QR code found in ``image``."""
    found = zxingcpp.read_barcodes(image)
    return [r.text for r in found if r.format == zxingcpp.BarcodeFormat.QRCode]
