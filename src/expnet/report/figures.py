"""Matplotlib figures without pyplot: no global backend, no display, safe in any process."""

from __future__ import annotations

import base64
import html
import io


def new_figure(width: float, height: float, dpi: int = 100):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def png_bytes(figure, dpi: int | None = None) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def png_img(png: bytes, alt: str) -> str:
    """An ``<img>`` tag that carries the PNG itself (base64), so a page is one self-contained file."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" style="max-width:100%">'
