"""Pascal VOC XML -> YOLO label files (LLVIP's annotation format).

LLVIP ships one VOC XML per image (``Annotations/010001.xml``) with the image size in ``<size>`` and one
``<object>`` per person. YOLO wants one text file per image, one line per box::

    class cx cy w h            # all four normalised by the image width / height, in [0, 1]

Conventions (documented, because VOC converters differ by a pixel):

- the size used for normalising is read from each file's own ``<size>`` (never assumed to be 1280 x 1024);
- ``xmin..xmax`` / ``ymin..ymax`` are taken as continuous pixel-edge coordinates: ``cx = (xmin + xmax) / 2 / W``,
  ``w = (xmax - xmin) / W`` (no -1 shift; the difference to the 1-based convention is below half a pixel);
- boxes are clipped to the image; boxes with zero area after clipping are dropped and counted;
- objects whose ``<name>`` is not in ``classes`` are skipped and counted (LLVIP has only ``person``).

Command line: ``python -m mmdrfuse.voc XML_DIR OUT_DIR [--classes person] [--skip-bad]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from mmdrfuse.atomic import write_text
from mmdrfuse.errors import BadInputError, MMDRFuseError


@dataclass(frozen=True)
class VocObject:
    """One ``<object>``: class name, box corners in pixels, VOC ``difficult`` flag."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False


@dataclass(frozen=True)
class VocAnnotation:
    """One VOC file: the image file name, its size from ``<size>`` and its objects."""

    filename: str
    width: int
    height: int
    objects: tuple[VocObject, ...] = ()


@dataclass
class ConversionSummary:
    """What :func:`convert_folder` did."""

    files: int = 0
    boxes: int = 0
    skipped_class: int = 0      # objects whose name is not in ``classes``
    dropped_empty: int = 0      # boxes with zero area after clipping
    bad_files: list[str] = field(default_factory=list)  # messages for files skipped with skip_bad


def _text(node: ET.Element, tag: str, path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise BadInputError(f"{path}: <{tag}> missing in a VOC annotation; fix the file or remove it", str(path))
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: Path) -> float:
    raw = _text(node, tag, path)
    try:
        return float(raw)
    except ValueError:
        raise BadInputError(f"{path}: <{tag}> is {raw!r}, not a number; fix the file or remove it", str(path)) from None


def parse_voc(path: str | os.PathLike) -> VocAnnotation:
    """Read one Pascal VOC XML file (size from its ``<size>``; objects with their ``<bndbox>``)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: file not found", str(path))
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise BadInputError(f"{path}: not valid XML ({exc}); fix the file or remove it", str(path)) from None
    size = root.find("size")
    if size is None:
        raise BadInputError(f"{path}: <size> missing; the converter needs each file's image size", str(path))
    width, height = _number(size, "width", path), _number(size, "height", path)
    if width <= 0 or height <= 0 or width != int(width) or height != int(height):
        raise BadInputError(f"{path}: <size> is {width:g} x {height:g}; it must be positive whole pixels", str(path))
    filename_node = root.find("filename")
    filename = (filename_node.text or "").strip() if filename_node is not None else ""
    objects = []
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        if box is None:
            raise BadInputError(f"{path}: an <object> has no <bndbox>; fix the file or remove it", str(path))
        difficult = obj.find("difficult")
        objects.append(VocObject(
            name=_text(obj, "name", path),
            xmin=_number(box, "xmin", path), ymin=_number(box, "ymin", path),
            xmax=_number(box, "xmax", path), ymax=_number(box, "ymax", path),
            difficult=bool(difficult is not None and (difficult.text or "0").strip() == "1"),
        ))
    return VocAnnotation(filename or path.stem, int(width), int(height), tuple(objects))


def yolo_lines(ann: VocAnnotation, classes: Sequence[str] = ("person",),
               summary: ConversionSummary | None = None) -> list[str]:
    """YOLO label lines ``"cls cx cy w h"`` (normalised by the annotation's own size) for ``ann``."""
    ids = {name: i for i, name in enumerate(classes)}
    W, H = float(ann.width), float(ann.height)
    lines = []
    for obj in ann.objects:
        if obj.name not in ids:
            if summary is not None:
                summary.skipped_class += 1
            continue
        x0, x1 = sorted((min(max(obj.xmin, 0.0), W), min(max(obj.xmax, 0.0), W)))
        y0, y1 = sorted((min(max(obj.ymin, 0.0), H), min(max(obj.ymax, 0.0), H)))
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            if summary is not None:
                summary.dropped_empty += 1
            continue
        cx, cy, w, h = (x0 + x1) / 2 / W, (y0 + y1) / 2 / H, (x1 - x0) / W, (y1 - y0) / H
        lines.append(f"{ids[obj.name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def convert_folder(xml_dir: str | os.PathLike, out_dir: str | os.PathLike, classes: Sequence[str] = ("person",),
                   skip_bad: bool = False) -> ConversionSummary:
    """Convert every ``*.xml`` in ``xml_dir`` into ``out_dir/<stem>.txt`` (written atomically).

    Images without any kept object get an empty label file (a background image for YOLO). A malformed file raises
    :class:`BadInputError` naming it, unless ``skip_bad`` is set (then it is listed in ``summary.bad_files``).
    """
    xml_dir, out_dir = Path(xml_dir), Path(out_dir)
    if not xml_dir.is_dir():
        raise BadInputError(f"{xml_dir}: folder not found (expected Pascal VOC *.xml files)", str(xml_dir))
    files = sorted(p for p in xml_dir.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
    if not files:
        raise BadInputError(f"{xml_dir}: no *.xml annotation files found", str(xml_dir))
    summary = ConversionSummary()
    for xml in files:
        try:
            ann = parse_voc(xml)
        except BadInputError as exc:
            if not skip_bad:
                raise
            summary.bad_files.append(str(exc))
            continue
        lines = yolo_lines(ann, classes, summary)
        write_text(out_dir / f"{xml.stem}.txt", "".join(line + "\n" for line in lines))
        summary.files += 1
        summary.boxes += len(lines)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmdrfuse.voc", description=__doc__.splitlines()[0])
    parser.add_argument("xml_dir", help="folder of Pascal VOC *.xml files (e.g. LLVIP/Annotations)")
    parser.add_argument("out_dir", help="folder for the YOLO *.txt label files")
    parser.add_argument("--classes", nargs="+", default=["person"], help="class names in id order (default: person)")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed files instead of stopping")
    args = parser.parse_args(argv)
    try:
        s = convert_folder(args.xml_dir, args.out_dir, args.classes, args.skip_bad)
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{s.files} label files, {s.boxes} boxes -> {args.out_dir} (skipped: {s.skipped_class} other-class objects, "
          f"{s.dropped_empty} empty boxes, {len(s.bad_files)} bad files)")
    for msg in s.bad_files:
        print(f"  skipped: {msg}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
