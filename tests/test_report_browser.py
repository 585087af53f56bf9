"""The HTML report as a real browser shows it: headless Chromium renders a report of a synthetic
run, and the screenshot and the rendered DOM are checked. Skipped when no Chromium is installed
(CI's .ci/run installs Debian's)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bulkinvoke.reports.html import COLOURS, HISTOGRAM_COLOUR, render_html
from bulkinvoke.reports.model import build_report
from tests.test_report import RUN_ATTRIBUTES, make_run, mixed_items

WIDTH, HEIGHT = 1280, 2000
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason=f"no Chromium found on PATH (looked for {', '.join(BROWSERS)})"
)


def _chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[bytes]:
    assert BROWSER is not None
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("browser")
    report = build_report(make_run(directory / "run", mixed_items(300), RUN_ATTRIBUTES))
    path = directory / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def decode_png(data: bytes) -> np.ndarray:
    """The pixels of an 8-bit RGB or RGBA PNG as an array of shape (height, width, channels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, position = {}, 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunks.setdefault(kind, []).append(data[position + 8 : position + 8 + length])
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert depth == 8 and colour in (2, 6) and interlace == 0, "an unexpected PNG layout"
    channels = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(chunks[b"IDAT"])), np.uint8)
    rows = raw.reshape(height, 1 + width * channels)
    image = np.zeros((height, width * channels), np.uint8)
    previous = np.zeros(width * channels, np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            current = line.copy()
        elif kind == 1:
            current = np.cumsum(line.reshape(width, channels), axis=0, dtype=np.uint8).ravel()
        elif kind == 2:
            current = line + previous
        else:
            current = _unfilter_sequential(kind, line, previous, channels)
        image[y] = current
        previous = current
    return image.reshape(height, width, channels)


def _unfilter_sequential(
    kind: int, line: np.ndarray, previous: np.ndarray, channels: int
) -> np.ndarray:
    # Average and Paeth depend on the byte just decoded, so they cannot be vectorised.
    out = bytearray(len(line))
    above = previous.tolist()
    for i, value in enumerate(line.tolist()):
        left = out[i - channels] if i >= channels else 0
        up = above[i]
        if kind == 3:
            out[i] = (value + (left + up) // 2) & 0xFF
            continue
        corner = above[i - channels] if i >= channels else 0
        estimate = left + up - corner
        pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
        guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
        out[i] = (value + guess) & 0xFF
    return np.frombuffer(bytes(out), np.uint8)


def _rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def test_screenshot_shows_the_charts(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--hide-scrollbars",
        page.as_uri(),
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
    pixels = decode_png(shot.read_bytes())[:, :, :3]
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    packed = (pixels.astype(np.uint32) << np.array([16, 8, 0], np.uint32)).sum(axis=2).ravel()
    colours, counts = np.unique(packed, return_counts=True)
    assert len(colours) > 200, "the page looks blank or flat"
    assert counts.max() < 0.9 * packed.size, "one colour covers nearly the whole page"
    seen = dict(zip(colours.tolist(), counts.tolist(), strict=True))
    # Each chart colour fills bars, not just a legend swatch (an 11 px square is 121 pixels).
    for name in ("succeeded", "failed", "expired", "rejected"):
        red, green, blue = _rgb(COLOURS[name])
        assert seen.get(red << 16 | green << 8 | blue, 0) > 400, f"no {name} bars to be seen"
    red, green, blue = _rgb(HISTOGRAM_COLOUR)
    assert seen.get(red << 16 | green << 8 | blue, 0) > 2000, "no latency histogram to be seen"


class _Shapes(HTMLParser):
    """Counts, per SVG, the drawn rectangles and paths with something to draw."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self.svgs.append({"rect": 0, "path": 0, "text": 0})
        elif self.svgs and tag == "rect":
            if float(values.get("width", 0)) > 0 and float(values.get("height", 0)) > 0:
                self.svgs[-1]["rect"] += 1
        elif self.svgs and tag == "path" and values.get("d", "").strip():
            self.svgs[-1]["path"] += 1
        elif self.svgs and tag == "text":
            self.svgs[-1]["text"] += 1


def test_rendered_dom_holds_the_svg_charts(page: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path / "profile", "--dump-dom", page.as_uri()).stdout.decode("utf-8")
    assert "Items finished over time" in dom and "Failures by reason" in dom
    shapes = _Shapes()
    shapes.feed(dom)
    assert len(shapes.svgs) == 3, shapes.svgs
    for svg in shapes.svgs:
        assert svg["rect"] >= 3 and svg["path"] >= 1 and svg["text"] >= 5, svg
    assert not re.search(r"no data", dom)
