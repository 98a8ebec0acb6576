#!/usr/bin/env python3
"""pycocotools as the judge of roadseg's COCO reading and writing.

    coco_check.py read COCO_DIR NATIVE_DIR
        Reads a COCO folder roadseg wrote with pycocotools alone: every instances_*.json through
        COCO() and annToMask (annotations in file order, category id - 1 = class id), and every
        panoptic_*.json with its PNGs (id = R + 256 G + 256^2 B). Compares each image's mask
        with NATIVE_DIR/masks/<name>.png (255 where nothing is drawn). Prints
        {"images": n, "instances_differing": [...], "panoptic_differing": [...]}.

    coco_check.py write NATIVE_DIR OUT_DIR
        Writes NATIVE_DIR's masks as a COCO folder with pycocotools.mask.encode: one
        annotation per class and image, compressed RLE strings for even images and uncompressed
        column-major counts (iscrowd 1, as COCO stores crowds) for odd ones; images in
        OUT_DIR/train/, annotations/instances_train.json. Prints {"images": n, "annotations": m}.

    coco_check.py polygons LABELME_DIR NATIVE_DIR
        Rasterises the polygons of roadseg's labelme jsons with pycocotools (frPyObjects), in
        file order, and counts the pixels that differ from the native masks. Prints
        {"pixels": n, "differing": k}.
"""

import contextlib
import glob
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

IGNORE = 255


def native_mask(native, name):
    return np.array(Image.open(os.path.join(native, "masks", name + ".png")))


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def read(coco_dir, native):
    instances_differing, panoptic_differing, images = [], [], 0
    for path in sorted(glob.glob(os.path.join(coco_dir, "annotations", "instances_*.json"))):
        # COCO() reports its progress on stdout, where our answer goes.
        with contextlib.redirect_stdout(sys.stderr):
            coco = COCO(path)
        for image_id, info in coco.imgs.items():
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            if not anns:
                continue
            images += 1
            mask = np.full((info["height"], info["width"]), IGNORE, np.uint8)
            for ann in anns:
                mask[coco.annToMask(ann) > 0] = ann["category_id"] - 1
            if not np.array_equal(mask, native_mask(native, stem(info["file_name"]))):
                instances_differing.append(info["file_name"])
    for path in sorted(glob.glob(os.path.join(coco_dir, "annotations", "panoptic_*.json"))):
        data = json.load(open(path))
        png_dir = os.path.join(coco_dir, "annotations", stem(path))
        by_id = {i["id"]: i for i in data["images"]}
        for ann in data["annotations"]:
            info = by_id[ann["image_id"]]
            rgb = np.array(Image.open(os.path.join(png_dir, ann["file_name"])).convert("RGB")).astype(np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            mask = np.full(ids.shape, IGNORE, np.uint8)
            for segment in ann["segments_info"]:
                mask[ids == segment["id"]] = segment["category_id"] - 1
            if not np.array_equal(mask, native_mask(native, stem(info["file_name"]))):
                panoptic_differing.append(info["file_name"])
    print(json.dumps({
        "images": images,
        "instances_differing": instances_differing,
        "panoptic_differing": panoptic_differing,
    }))


def column_major_runs(binary):
    flat = binary.flatten(order="F")
    runs, value, count = [], 0, 0
    for v in flat:
        if v == value:
            count += 1
        else:
            runs.append(count)
            value, count = v, 1
    runs.append(count)
    return runs


def write(native, out):
    classes = json.load(open(os.path.join(native, "classes.json")))
    os.makedirs(os.path.join(out, "train"))
    os.makedirs(os.path.join(out, "annotations"))
    images, annotations = [], []
    for i, path in enumerate(sorted(glob.glob(os.path.join(native, "masks", "*.png")))):
        name = stem(path)
        image = [p for p in glob.glob(os.path.join(native, "images", name + ".*"))][0]
        shutil.copy(image, os.path.join(out, "train"))
        mask = np.array(Image.open(path))
        h, w = mask.shape
        images.append({"id": i + 1, "file_name": os.path.basename(image), "width": w, "height": h})
        for c in sorted(set(np.unique(mask)) - {IGNORE}):
            binary = (mask == c).astype(np.uint8)
            if i % 2 == 0:
                rle = mask_utils.encode(np.asfortranarray(binary))
                segmentation = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
                crowd = 0
            else:
                segmentation = {"size": [h, w], "counts": column_major_runs(binary)}
                crowd = 1
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                "segmentation": segmentation, "iscrowd": crowd,
                "area": int(binary.sum()), "bbox": list(mask_utils.toBbox(mask_utils.encode(np.asfortranarray(binary)))),
            })
    categories = [{"id": c["id"] + 1, "name": c["name"], "supercategory": ""} for c in classes]
    with open(os.path.join(out, "annotations", "instances_train.json"), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    print(json.dumps({"images": len(images), "annotations": len(annotations)}))


def polygons(labelme_dir, native):
    pixels = differing = 0
    labels = [l.strip() for l in open(os.path.join(labelme_dir, "labels.txt")) if l.strip()]
    ids = {name: i for i, name in enumerate([l for l in labels if l != "__ignore__"])}
    ids["__ignore__"] = IGNORE
    for path in sorted(glob.glob(os.path.join(labelme_dir, "*.json"))):
        if os.path.basename(path) == "splits.json":
            continue
        data = json.load(open(path))
        h, w = data["imageHeight"], data["imageWidth"]
        mask = np.full((h, w), IGNORE, np.uint8)
        for shape in data["shapes"]:
            flat = [float(v) for point in shape["points"] for v in point]
            rle = mask_utils.merge(mask_utils.frPyObjects([flat], h, w))
            mask[mask_utils.decode(rle) > 0] = ids[shape["label"]]
        expected = native_mask(native, stem(path))
        pixels += expected.size
        differing += int((mask != expected).sum())
    print(json.dumps({"pixels": pixels, "differing": differing}))


if __name__ == "__main__":
    mode, a, b = sys.argv[1:4]
    {"read": read, "write": write, "polygons": polygons}[mode](a, b)
