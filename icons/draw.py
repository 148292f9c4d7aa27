#!/usr/bin/env python3
"""Draws Concord's icons: the app icon and one tray icon per state.

Standard library only (zlib + struct write the PNGs), so the icons can be regenerated anywhere:
`python3 icons/draw.py`. Each shape is a signed-distance test sampled 4x4 per pixel for
anti-aliasing. The tray icons are 32x32 (libayatana scales them to the panel); the app icon is
drawn at every size tauri.conf.json lists.
"""

import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = 4  # per axis: 16 samples per pixel

WHITE = (255, 255, 255)
STATE_COLOURS = {
    "idle": (46, 139, 87),  # green: all synced
    "syncing": (37, 99, 235),  # blue: work in progress
    "attention": (217, 119, 6),  # amber: a conflict or a question waits
    "error": (220, 38, 38),  # red: something failed hard
    "paused": (107, 114, 128),  # grey: the person paused syncing
}


def write_png(path, width, height, pixel):
    """pixel(x, y) -> (r, g, b, a), each 0..255, straight (not premultiplied) alpha."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            r, g, b, a = pixel(x, y)
            rows += bytes((r, g, b, a))
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(bytes(rows), 9))
    png += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def seg_dist(px, py, ax, ay, bx, by):
    """Distance from point p to segment ab."""
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def arc_hit(px, py, radius, width, start_deg, end_deg):
    """On a ring of the given radius, between two angles (degrees, clockwise from 3 o'clock)."""
    r = math.hypot(px, py)
    if abs(r - radius) > width / 2:
        return False
    angle = math.degrees(math.atan2(py, px)) % 360
    return start_deg <= angle <= end_deg


def glyph(state, px, py):
    """Whether the unit-square point (centred, -1..1) lies on the state's white glyph."""
    w = 0.17  # stroke width in unit coordinates
    if state == "idle":  # a check mark
        return seg_dist(px, py, -0.45, 0.0, -0.12, 0.33) < w or seg_dist(px, py, -0.12, 0.33, 0.48, -0.3) < w
    if state == "syncing":  # two chasing arcs with arrow heads
        if arc_hit(px, py, 0.55, 1.6 * w, 30, 150) or arc_hit(px, py, 0.55, 1.6 * w, 210, 330):
            return True
        for end in (150, 330):
            # a chevron at the end of each arc, pointing clockwise (the direction of travel)
            tip = math.radians(end + 12)
            back = math.radians(end - 14)
            tx, ty = 0.55 * math.cos(tip), 0.55 * math.sin(tip)
            for radius in (0.36, 0.74):
                bx, by = radius * math.cos(back), radius * math.sin(back)
                if seg_dist(px, py, tx, ty, bx, by) < w * 0.7:
                    return True
        return False
    if state == "attention":  # an exclamation mark
        return seg_dist(px, py, 0.0, -0.5, 0.0, 0.12) < w or math.hypot(px, py - 0.45) < w * 1.2
    if state == "error":  # a cross
        return seg_dist(px, py, -0.4, -0.4, 0.4, 0.4) < w or seg_dist(px, py, -0.4, 0.4, 0.4, -0.4) < w
    if state == "paused":  # two bars
        return (abs(px + 0.22) < w and abs(py) < 0.45) or (abs(px - 0.22) < w and abs(py) < 0.45)
    if state == "app":  # Concord: two interlocking rings (two sides kept in step)
        return arc_hit(px + 0.25, py, 0.42, 1.6 * w, 0, 360) or arc_hit(px - 0.25, py, 0.42, 1.6 * w, 0, 360)
    raise ValueError(state)


def icon(state, colour, size):
    def pixel(x, y):
        disc = glyph_hits = 0
        for sy in range(SAMPLES):
            for sx in range(SAMPLES):
                # unit coordinates: -1..1 across the icon
                ux = ((x + (sx + 0.5) / SAMPLES) / size) * 2 - 1
                uy = ((y + (sy + 0.5) / SAMPLES) / size) * 2 - 1
                if math.hypot(ux, uy) <= 0.94:
                    disc += 1
                    if glyph(state, ux / 0.94, uy / 0.94):
                        glyph_hits += 1
        total = SAMPLES * SAMPLES
        if disc == 0:
            return (0, 0, 0, 0)
        mix = glyph_hits / disc
        rgb = tuple(round(c * (1 - mix) + w * mix) for c, w in zip(colour, WHITE))
        return rgb + (round(255 * disc / total),)

    return pixel


def main():
    for state, colour in STATE_COLOURS.items():
        write_png(os.path.join(HERE, f"tray-{state}.png"), 32, 32, icon(state, colour, 32))
    app_colour = (30, 64, 175)
    for name, size in (("32x32.png", 32), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)):
        write_png(os.path.join(HERE, name), size, size, icon("app", app_colour, size))


if __name__ == "__main__":
    main()
