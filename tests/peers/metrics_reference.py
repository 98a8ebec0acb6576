#!/usr/bin/env python3
"""Independent reference for roadseg's metrics: reads predicted and ground-truth index PNGs
with Pillow, builds the confusion matrix with numpy, and prints the same JSON as
`roadseg eval --json` (with --per-image, also its "images" list).

usage: metrics_reference.py [--per-image] NUM_CLASSES PRED_DIR GT_DIR NAME...
Pixels whose ground truth is not a class id (255 = ignore) are not counted. Per image, a class
absent from both ground truth and prediction has no IoU (null); the list is sorted worst mean
IoU first, images without any scored class last, ties by name.
"""
import json
import sys

import numpy as np
from PIL import Image


def confusion_of(n, pred, gt):
    keep = (gt < n) & (pred < n)
    return np.bincount(gt[keep] * n + pred[keep], minlength=n * n).reshape(n, n)


def scores(confusion):
    tp = np.diag(confusion).astype(np.float64)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    present = (tp + fp + fn) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
    return tp, present, iou, f1


def main() -> None:
    args = sys.argv[1:]
    per_image = args[0] == "--per-image"
    if per_image:
        args = args[1:]
    n = int(args[0])
    pred_dir, gt_dir, names = args[1], args[2], args[3:]
    confusion = np.zeros((n, n), dtype=np.int64)
    images = []
    for name in names:
        pred = np.asarray(Image.open(f"{pred_dir}/{name}.png"), dtype=np.int64)
        gt = np.asarray(Image.open(f"{gt_dir}/{name}.png"), dtype=np.int64)
        assert pred.shape == gt.shape, (name, pred.shape, gt.shape)
        own = confusion_of(n, pred, gt)
        confusion += own
        tp, present, iou, _ = scores(own)
        total = int(own.sum())
        images.append({
            "name": name,
            "pixel_accuracy": float(tp.sum() / total) if total else None,
            "mean_iou": float(iou[present].mean()) if present.any() else None,
            "iou": [float(v) if p else None for v, p in zip(iou, present)],
            "wrong_pixels": total - int(tp.sum()),
        })
    tp, present, iou, f1 = scores(confusion)
    total = confusion.sum()
    out = {
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "mean_iou": float(iou[present].mean()) if present.any() else 0.0,
        "mean_f1": float(f1[present].mean()) if present.any() else 0.0,
        "iou": [float(v) if p else None for v, p in zip(iou, present)],
        "f1": [float(v) if p else None for v, p in zip(f1, present)],
        "confusion": confusion.tolist(),
    }
    if per_image:
        images.sort(key=lambda s: (s["mean_iou"] is None, s["mean_iou"] or 0.0, s["name"]))
        out["images"] = images
    print(json.dumps(out))


if __name__ == "__main__":
    main()
