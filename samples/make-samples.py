#!/usr/bin/env python3
"""Draws the sample images in this folder (needs Pillow). They are committed;
qie does not run this. All drawn here, dedicated to the public domain (CC0)."""
import math
from PIL import Image, ImageDraw, ImageFilter

def landscape(w, h):
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    for y in range(h):  # sky gradient
        t = y / h
        d.line([(0, y), (w, y)], fill=(int(60 + 150 * t), int(120 + 90 * t), int(220 - 40 * t)))
    d.ellipse([w * 0.68, h * 0.12, w * 0.82, h * 0.12 + w * 0.14], fill=(255, 214, 90))
    for i, colour in enumerate([(70, 120, 70), (50, 95, 55), (35, 70, 40)]):
        base = h * (0.55 + 0.13 * i)
        points = [(x, base - math.sin(x / w * math.pi * (2 + i) + i) * h * 0.08) for x in range(0, w + 8, 8)]
        d.polygon(points + [(w, h), (0, h)], fill=colour)
    return img.filter(ImageFilter.SMOOTH)

# 1. Landscape photo-like JPEG, 4:3.
landscape(1600, 1200).save("hills-4x3.jpg", quality=88)

# 2. Portrait shot stored sideways with EXIF orientation 6 (displays 900x1200).
portrait = landscape(900, 1200)
ImageDraw.Draw(portrait).text((30, 30), "UP", fill=(255, 255, 255))
exif = Image.Exif()
exif[0x0112] = 6
portrait.transpose(Image.Transpose.ROTATE_90).save("portrait-exif-rotated.jpg", quality=88, exif=exif.tobytes())

# 3. Logo with transparency (PNG, RGBA).
logo = Image.new("RGBA", (640, 640), (0, 0, 0, 0))
d = ImageDraw.Draw(logo)
d.ellipse([40, 40, 600, 600], fill=(230, 80, 40, 255))
d.ellipse([180, 180, 460, 460], fill=(0, 0, 0, 0))
d.rectangle([290, 20, 350, 620], fill=(40, 90, 200, 220))
logo.save("logo-alpha.png")

# 4. Square WebP.
landscape(1024, 1024).save("square.webp", quality=85)

# 5. Wide panorama PNG, 21:9-ish.
landscape(2100, 900).convert("RGB").save("panorama-21x9.png", optimize=True)
print("samples written")
