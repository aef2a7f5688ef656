"""The geometry around dlib's CNN face detector: its image pyramid and box overlap.

Ports of dlib's tiled image pyramid (``compute_tiled_image_pyramid_details``,
``tiled_pyramid_to_image``), ``pyramid_down<2>`` sizes and ``test_box_overlap``,
used by :mod:`facecluster.detect.mmod` to turn the network's score map
into boxes exactly as dlib does.  dlib rectangles here are inclusive
``(left, top, right, bottom)``.
"""

from __future__ import annotations

import math

PYRAMID_RATE = 5 / 6  # pyramid_down<6>
MIN_LEVEL_HEIGHT = 5  # compute_tiled_image_pyramid_details stops below this


def round_half_up(x: float) -> int:
    """drectangle -> rectangle conversion: floor(x + 0.5) (dlib/geometry/drectangle.h)."""
    return math.floor(x + 0.5)


def pyramid_up_size(rows: int, cols: int) -> tuple[int, int]:
    """Size ``pyramid_up`` gives: the rounded ``pyramid_down<2>::rect_up`` of the image.

    point_up(p) = (p + (1.25, 0.75)) * 2, so the bottom-right corner lands at
    (2*cols + 0.5, 2*rows - 0.5).
    """
    return round_half_up((rows - 1 + 0.75) * 2) + 1, round_half_up((cols - 1 + 1.25) * 2) + 1


def rect_down_2(rect: tuple[float, float, float, float], levels: int) -> tuple[int, ...]:
    """``pyramid_down<2>::rect_down(rect, levels)``, rounded: p/2 - (1.25, 0.75) per level."""
    left, top, right, bottom = rect
    for _ in range(levels):
        left, right = left / 2 - 1.25, right / 2 - 1.25
        top, bottom = top / 2 - 0.75, bottom / 2 - 0.75
    return round_half_up(left), round_half_up(top), round_half_up(right), round_half_up(bottom)


def tile_layout(rows: int, cols: int, padding: int, outer: int) -> tuple[list[tuple[int, int, int, int]], int, int]:
    """Where each pyramid level goes in the tiled image.

    Port of dlib's ``impl::compute_tiled_image_pyramid_details``: levels shrink
    by ``floor(5/6 * size)`` until under 5 rows; they run down the left column
    and then back up on the right.  Returns (level rects as (left, top, right,
    bottom), tiled rows, tiled cols).
    """
    sizes = [(rows, cols)]
    while True:
        rows, cols = math.floor(PYRAMID_RATE * rows), math.floor(PYRAMID_RATE * cols)
        if rows * cols == 0 or rows < MIN_LEVEL_HEIGHT:
            break
        sizes.append((rows, cols))
    first_h, width = sizes[0]
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    height = prev_width = 0
    for h, w in sizes:
        if w <= width - prev_width - padding and (height - first_h) * 2 >= total_height - first_h:
            break
        height += h + padding
        prev_width = w
    height -= padding
    rects: list[tuple[int, int, int, int]] = []
    y = outer
    i = 0
    while y < height + outer and i < len(sizes):
        h, w = sizes[i]
        rects.append((outer, y, outer + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    first = rects[0]
    while i < len(sizes):
        h, w = sizes[i]
        right, bottom = outer + width - 1, y - 1
        rect = (right - w + 1, bottom - h + 1, right, bottom)
        if intersects(first, rect):
            break
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, height + 2 * outer, width + 2 * outer


def intersects(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return max(a[0], b[0]) <= min(a[2], b[2]) and max(a[1], b[1]) <= min(a[3], b[3])


def nearest_level(rects: list[tuple[int, int, int, int]], x: float, y: float) -> int:
    """dlib's ``nearest_rect``: the first rect holding (x, y), else the closest one."""
    best, best_dist = 0, math.inf
    for i, (left, top, right, bottom) in enumerate(rects):
        if left <= x <= right and top <= y <= bottom:
            return i
        dx = x - min(max(x, left), right)
        dy = y - min(max(y, top), bottom)
        if math.hypot(dx, dy) < best_dist:
            best, best_dist = i, math.hypot(dx, dy)
    return best


def to_image(rects: list, x: float, y: float, width: int, height: int) -> tuple[float, float, float, float]:
    """``tiled_pyramid_to_image`` of the window centred on tensor point (x, y).

    ``centered_drect`` spans +-(size-1)/2; the level's origin is subtracted and
    ``pyramid_down<6>::point_up`` (p * 6/5 + 0.3) applied once per level.
    """
    level = nearest_level(rects, x, y)
    ox, oy = rects[level][0], rects[level][1]
    box = [x - (width - 1) / 2 - ox, y - (height - 1) / 2 - oy, x + (width - 1) / 2 - ox, y + (height - 1) / 2 - oy]
    for _ in range(level):
        box = [v / PYRAMID_RATE + 0.3 for v in box]
    return box[0], box[1], box[2], box[3]


def overlaps(a: tuple[int, ...], b: tuple[int, ...], iou: float, covered: float) -> bool:
    """dlib's ``test_box_overlap`` (dlib/image_processing/box_overlap_testing.h).

    Areas count pixels inclusively; the "union" is the bounding box of both.
    """
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return False
    inner = float(iw * ih)
    outer = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inner / outer > iou or inner / area_a > covered or inner / area_b > covered
