"""Attention heatmaps as one PNG-ready PIL image: a single matrix, a layer's head grid or the
model grid (layers x heads), with token labels where the cells are big enough to read them.

Plain numpy and PIL (no matplotlib): the served module draws these on request, and the
`attention_view` command line writes them to files (BertViz cannot export images: #13, #33).
"""

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CAPTION = "Attention weights, row = query token, column = key token; each panel scaled to its own maximum. Not an explanation."
# White to a dark blue (the ends of matplotlib's "Blues").
LOW_COLOR = np.array([255, 255, 255], dtype=np.float32)
HIGH_COLOR = np.array([8, 48, 107], dtype=np.float32)
# Pixels a grid gives all its panels side by side, and the bounds on one panel's side.
GRID_WIDTH = 1536
SINGLE_PANEL_SIDE = 768
MIN_PANEL_SIDE, MAX_PANEL_SIDE = 64, 320
# Token labels are drawn only when a token gets at least this many pixels.
MIN_LABELLED_CELL = 8
PAD = 6
PANEL_FRAME = (160, 160, 160)


@dataclass
class HeatmapPanel:
    """One matrix to draw at (row, column) of the grid."""

    title: str
    matrix: np.ndarray  # [queries, keys], non-negative
    query_labels: Sequence[str]
    key_labels: Sequence[str]
    row: int
    column: int


def draw_attention_heatmap(groups: List[dict], caption: str = CAPTION) -> Image.Image:
    """A grid of every matrix in `groups` (kind, layers, heads, aggregate, matrices, query_labels,
    key_labels, as AttentionResult.matrix_groups() gives them): a row per (kind, layer), a column
    per head. One matrix is one big labelled heatmap; a layer's heads are one row of them."""
    panels, row = [], 0
    for group in groups:
        columns = [f"H{head}" for head in group["heads"]] if group["aggregate"] == "none" else [group["aggregate"]]
        for layer_index, layer in enumerate(group["layers"]):
            for column, name in enumerate(columns):
                panels.append(
                    HeatmapPanel(
                        f"{group['kind']} L{layer} {name}",
                        group["matrices"][layer_index, column],
                        group["query_labels"],
                        group["key_labels"],
                        row,
                        column,
                    )
                )
            row += 1
    return draw_heatmap_grid(panels, caption)


def colorize(matrix: np.ndarray) -> np.ndarray:
    """An RGB uint8 image of `matrix`, white at 0, dark blue at the matrix's maximum."""
    top = float(matrix.max()) if matrix.size else 0.0
    scaled = matrix / top if top > 0 else np.zeros_like(matrix)
    rgb = LOW_COLOR + scaled[..., None].astype(np.float32) * (HIGH_COLOR - LOW_COLOR)
    return rgb.round().astype(np.uint8)


def draw_heatmap_grid(panels: List[HeatmapPanel], caption: str = CAPTION) -> Image.Image:
    """Lay the panels out on their (row, column) grid with titles, labels and a caption."""
    if not panels:
        raise ValueError("no attention matrices to draw")
    rows = max(panel.row for panel in panels) + 1
    columns = max(panel.column for panel in panels) + 1
    biggest = max(max(panel.matrix.shape) for panel in panels)
    side = SINGLE_PANEL_SIDE if len(panels) == 1 else min(MAX_PANEL_SIDE, max(MIN_PANEL_SIDE, GRID_WIDTH // columns))
    scale = side / biggest
    cell = int(scale) if scale >= 1 else 0
    labelled = cell >= MIN_LABELLED_CELL
    font_size = min(14, cell - 1) if labelled else 12
    font = ImageFont.load_default(size=font_size)
    title_font = ImageFont.load_default(size=12)

    label_width = 0
    if labelled:
        labels = [label for panel in panels for label in (*panel.query_labels, *panel.key_labels)]
        label_width = int(max(font.getlength(label) for label in labels)) + PAD
    title_height = 16
    slot_width = label_width + side + 2 * PAD
    slot_height = title_height + label_width + side + 2 * PAD
    caption_height = 24
    canvas = Image.new("RGB", (max(columns * slot_width, 480), caption_height + rows * slot_height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((PAD, 5), caption, fill=(40, 40, 40), font=title_font)

    for panel in panels:
        queries, keys = panel.matrix.shape
        left = panel.column * slot_width + PAD
        top = caption_height + panel.row * slot_height + PAD
        draw.text((left + label_width, top), panel.title, fill=(0, 0, 0), font=title_font)
        origin = (left + label_width, top + title_height + label_width)
        picture = Image.fromarray(colorize(panel.matrix), "RGB")
        if cell:
            picture = picture.resize((keys * cell, queries * cell), Image.NEAREST)
        else:
            picture = picture.resize((max(1, round(keys * scale)), max(1, round(queries * scale))), Image.BOX)
        canvas.paste(picture, origin)
        draw.rectangle(
            (origin[0] - 1, origin[1] - 1, origin[0] + picture.width, origin[1] + picture.height), outline=PANEL_FRAME
        )
        if labelled:
            _draw_labels(canvas, draw, font, panel, origin, cell, label_width)
    return canvas


def _draw_labels(canvas, draw, font, panel: HeatmapPanel, origin, cell: int, label_width: int) -> None:
    """Query labels right-aligned left of the rows; key labels above the columns, read bottom-up."""
    for index, label in enumerate(panel.query_labels):
        width = font.getlength(label)
        draw.text((origin[0] - PAD // 2 - width, origin[1] + index * cell + cell / 2), label, fill=(0, 0, 0), font=font, anchor="lm")
    strip = Image.new("RGB", (label_width, len(panel.key_labels) * cell), "white")
    strip_draw = ImageDraw.Draw(strip)
    for index, label in enumerate(panel.key_labels):
        # Drawn on a horizontal strip that is then turned a quarter left: a label's start ends up
        # next to the panel.
        strip_draw.text((PAD // 2, index * cell + cell / 2), label, fill=(0, 0, 0), font=font, anchor="lm")
    canvas.paste(strip.transpose(Image.ROTATE_90), (origin[0], origin[1] - label_width - 1))
