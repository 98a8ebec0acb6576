#!/usr/bin/env python3
"""Independent reference for roadseg's metrics: reads predicted and ground-truth index PNGs
with Pillow, builds the confusion matrix with numpy, and prints the same JSON as
`roadseg eval --json`.

usage: metrics_reference.py NUM_CLASSES PRED_DIR GT_DIR NAME...
Pixels whose ground truth is not a class id (255 = ignore) are not counted.
"""
import json
import sys

import numpy as np
from PIL import Image


def main() -> None:
    n = int(sys.argv[1])
    pred_dir, gt_dir, names = sys.argv[2], sys.argv[3], sys.argv[4:]
    confusion = np.zeros((n, n), dtype=np.int64)
    for name in names:
        pred = np.asarray(Image.open(f"{pred_dir}/{name}.png"), dtype=np.int64)
        gt = np.asarray(Image.open(f"{gt_dir}/{name}.png"), dtype=np.int64)
        assert pred.shape == gt.shape, (name, pred.shape, gt.shape)
        keep = (gt < n) & (pred < n)
        confusion += np.bincount(
            gt[keep] * n + pred[keep], minlength=n * n
        ).reshape(n, n)
    tp = np.diag(confusion).astype(np.float64)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    present = (tp + fp + fn) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
    total = confusion.sum()
    print(json.dumps({
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "mean_iou": float(iou[present].mean()) if present.any() else 0.0,
        "mean_f1": float(f1[present].mean()) if present.any() else 0.0,
        "iou": [float(v) if p else None for v, p in zip(iou, present)],
        "f1": [float(v) if p else None for v, p in zip(f1, present)],
        "confusion": confusion.tolist(),
    }))


if __name__ == "__main__":
    main()
