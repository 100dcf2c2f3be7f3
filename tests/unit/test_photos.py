"""The photo rules (voting.core.photos) on real files: the sample photos, the bad ones of
data/photos-bad.zip, and images made here with Pillow."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from voting.core import photos
from voting.core.errors import Invalid

DATA = Path(__file__).resolve().parents[2] / "data"
SAMPLE_ZIP = DATA / "shortlist-sample-photos.zip"
BAD_ZIP = DATA / "photos-bad.zip"
CODES = [f"DH{i:02d}" for i in range(1, 29)]


def image_bytes(
    fmt: str, size: tuple[int, int] = (400, 500), mode: str = "RGB", color=None, **save
) -> bytes:
    im = Image.new(mode, size, color or ("red" if mode != "CMYK" else (0, 255, 255, 0)))
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def zip_of(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def decoded(r: photos.Rendition) -> Image.Image:
    im = Image.open(io.BytesIO(r.data))
    im.load()
    return im


def assert_clean(r: photos.Rendition) -> None:
    """A stored rendition: WebP of its size, no EXIF, XMP or ICC profile."""
    im = decoded(r)
    assert im.format == "WEBP" and im.mode == "RGB"
    assert im.size == (r.width, r.height)
    assert len(im.getexif()) == 0
    assert not {"exif", "icc_profile", "xmp"} & set(im.info)
    assert b"EXIF" not in r.data[:64] and b"ICCP" not in r.data[:64]


def test_every_sample_photo_is_rendered_in_every_size_without_metadata():
    with zipfile.ZipFile(SAMPLE_ZIP) as z:
        formats = {n: Image.open(io.BytesIO(z.read(n))).format for n in z.namelist()}
        exif = [n for n in z.namelist() if len(Image.open(io.BytesIO(z.read(n))).getexif())]
    assert set(formats.values()) == {"JPEG", "PNG", "WEBP"} and exif  # what the test rests on
    rendered = photos.read_photo_zip(SAMPLE_ZIP.read_bytes(), CODES)
    assert sorted(rendered) == CODES
    for code, photo in rendered.items():
        assert photo.format == formats[f"{code}.{photo.format.lower().replace('jpeg', 'jpg')}"]
        assert [r.size for r in photo.renditions] == list(photos.SIZES)
        for r in photo.renditions:
            size = photos.SIZES[r.size]
            assert (r.width, r.height) == (size.width, size.height)
            assert_clean(r)
    assert len({p.version for p in rendered.values()}) == 28


def test_the_bad_archive_is_refused_entry_by_entry():
    with pytest.raises(Invalid) as caught:
        photos.read_photo_zip(BAD_ZIP.read_bytes(), CODES)
    assert caught.value.code == "invalid_photos"
    errors = {e["name"]: e["message"] for e in caught.value.details["errors"]}
    assert set(errors) == {"DH01.jpg", "XX99.png", "DH02.jpg", "../escape.jpg"}
    assert "not a JPEG, PNG or WebP image" in errors["DH01.jpg"]
    assert "no candidate of this round has the code 'XX99'" in errors["XX99.png"]
    assert "12000×9000 pixels" in errors["DH02.jpg"] and "decompression bomb" in errors["DH02.jpg"]
    assert "leaves the archive's folder" in errors["../escape.jpg"]


def test_each_bad_file_alone_is_refused_with_its_reason():
    with zipfile.ZipFile(BAD_ZIP) as z:
        not_image, zeros, bomb = z.read("DH01.jpg"), z.read("XX99.png"), z.read("DH02.jpg")
    for data, reason in [
        (not_image, "not a JPEG, PNG or WebP"),
        (zeros, "not a JPEG, PNG or WebP"),
        (bomb, "108.0 megapixels"),
        (b"", "empty"),
        (image_bytes("GIF"), "not a JPEG, PNG or WebP"),
        (image_bytes("PNG", (100, 300)), "at least 192×192"),
        (image_bytes("JPEG")[:300], "damaged"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "damaged"),
        (b"x" * (photos.MAX_PHOTO_BYTES + 1), "at most 20.0 MB"),
    ]:
        with pytest.raises(Invalid) as caught:
            photos.check_photo(data)
        assert caught.value.code == "invalid_photo"
        assert reason in caught.value.message, (reason, caught.value.message)


def test_a_bomb_over_pillows_own_error_limit_is_refused_the_same_way():
    # 20000×20000 claims 400 megapixels: over 2 × Image.MAX_IMAGE_PIXELS, where Pillow's
    # Image.open raises DecompressionBombError; the header is all that is read
    with zipfile.ZipFile(BAD_ZIP) as z:
        bomb = bytearray(z.read("DH02.jpg"))
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") * 2
    with pytest.raises(Invalid, match="400.0 megapixels"):
        photos.check_photo(bytes(bomb))


def test_content_decides_the_format_not_the_name():
    png = image_bytes("PNG")
    rendered = photos.read_photo_zip(
        zip_of({"DH01.jpg": png, "dh02.WEBP": image_bytes("JPEG")}), CODES
    )
    assert rendered["DH01"].format == "PNG" and rendered["DH02"].format == "JPEG"


def test_exif_orientation_is_applied_then_dropped():
    # stored 400×200, red left and blue right; orientation 6 shows it turned 90° clockwise:
    # 200×400, red on top
    im = Image.new("RGB", (400, 200), "blue")
    im.paste("red", (0, 0, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "ExampleCam"
    gps = exif.get_ifd(0x8825)
    gps[2] = (10.0, 46.0, 30.0)  # GPSLatitude
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=95)
    assert Image.open(io.BytesIO(buf.getvalue())).getexif().get_ifd(0x8825)
    photo = photos.render(buf.getvalue())
    assert (photo.width, photo.height) == (400, 200)
    profile = decoded(photo.renditions[1])
    assert_clean(photo.renditions[1])
    top, bottom = profile.getpixel((100, 10)), profile.getpixel((100, profile.height - 10))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_transparency_is_flattened_onto_white_and_the_icc_profile_dropped():
    im = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    im.save(buf, "PNG", icc_profile=icc)
    assert Image.open(io.BytesIO(buf.getvalue())).info.get("icc_profile")
    photo = photos.render(buf.getvalue())
    for r in photo.renditions:
        assert_clean(r)
        assert decoded(r).getpixel((5, 5)) == (255, 255, 255)


def test_cmyk_and_grey_images_become_srgb():
    for data in (image_bytes("JPEG", mode="CMYK"), image_bytes("PNG", mode="L")):
        photo = photos.render(data)
        for r in photo.renditions:
            assert_clean(r)


def test_sixteen_bit_grey_keeps_its_tone():
    photo = photos.render(image_bytes("PNG", mode="I;16", color=32768))
    grey = decoded(photo.renditions[0]).getpixel((5, 5))
    assert all(120 <= v <= 136 for v in grey), grey


def test_a_small_source_is_cropped_but_never_upscaled():
    photo = photos.render(image_bytes("PNG", (300, 300)))
    sizes = {r.size: (r.width, r.height) for r in photo.renditions}
    assert sizes == {"card": (192, 192), "profile": (240, 300)}


def test_archive_names_that_are_refused_and_names_that_are_skipped():
    good = image_bytes("JPEG")
    with pytest.raises(Invalid) as caught:
        photos.read_photo_zip(
            zip_of(
                {
                    "../DH01.jpg": good,
                    "photos/../../DH02.jpg": good,
                    "/etc/DH03.jpg": good,
                    "C:\\photos\\DH04.jpg": good,
                    "..\\DH05.jpg": good,
                    "DH06.gif": good,
                    "readme.txt": b"hello",
                    "DH07.jpg": good,
                    "photos/dh07.png": good,
                    "photos/DH08.jpg": good,  # a folder inside the archive is fine
                    "__MACOSX/photos/._DH08.jpg": b"\0\5\26\7",  # skipped
                    "photos/.DS_Store": b"\0",  # skipped
                }
            ),
            CODES,
        )
    errors = {e["name"]: e["message"] for e in caught.value.details["errors"]}
    assert set(errors) == {
        "../DH01.jpg",
        "photos/../../DH02.jpg",
        "/etc/DH03.jpg",
        "C:\\photos\\DH04.jpg",
        "..\\DH05.jpg",
        "DH06.gif",
        "readme.txt",
        "photos/dh07.png",
    }
    assert (
        "absolute path" in errors["/etc/DH03.jpg"] and "absolute" in errors["C:\\photos\\DH04.jpg"]
    )
    assert "leaves the archive's folder" in errors["..\\DH05.jpg"]
    assert "CODE.jpg, CODE.png or CODE.webp" in errors["readme.txt"]
    assert "second photo of DH07" in errors["photos/dh07.png"]
    rendered = photos.read_photo_zip(
        zip_of({"photos/DH08.jpg": good, "__MACOSX/photos/._DH08.jpg": b"\0", "photos/": b""}),
        CODES,
    )
    assert list(rendered) == ["DH08"]


def test_archive_limits(monkeypatch):
    with pytest.raises(Invalid, match="not a readable ZIP") as caught:
        photos.read_photo_zip(image_bytes("JPEG"), CODES)
    assert caught.value.code == "invalid_zip"
    with pytest.raises(Invalid, match="holds no photo"):
        photos.read_photo_zip(zip_of({"folder/": b""}), CODES)
    many = {f"x/{i}.txt": b"" for i in range(photos.MAX_ZIP_ENTRIES + 1)}
    with pytest.raises(Invalid, match="more than 200 entries"):
        photos.read_photo_zip(zip_of(many), CODES)
    with pytest.raises(Invalid, match="at most 100.0 MB"):
        photos.read_photo_zip(b"PK" + b"\0" * photos.MAX_ZIP_BYTES, CODES)
    big = zip_of({"DH01.jpg": b"\0" * 3_000_000, "DH02.jpg": b"\0" * 3_000_000})
    monkeypatch.setattr(photos, "MAX_ZIP_UNPACKED", 5_000_000)
    with pytest.raises(Invalid, match="unpacks to 6.0 MB"):
        photos.read_photo_zip(big, CODES)
    monkeypatch.setattr(photos, "MAX_PHOTO_BYTES", 2_000_000)
    monkeypatch.setattr(photos, "MAX_ZIP_UNPACKED", 50_000_000)
    with pytest.raises(Invalid) as caught:
        photos.read_photo_zip(big, CODES)
    assert [e["message"] for e in caught.value.details["errors"]] == [
        "the file is 3.0 MB; at most 2.0 MB is accepted"
    ] * 2
