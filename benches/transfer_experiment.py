#!/usr/bin/env python3
"""The README's transfer and multi-task experiments, driving the `roadseg` binary.

1. Multi-task: the default run on a sample, with and without `--aux boundary`; `eval` at full
   resolution gives road IoU, mIoU and boundary F1 (road edges within 2 px).
2. Transfer: pre-train on the sample of seed A (7 classes), fine-tune with `--init-from` on a
   sample of another seed whose masks are re-coded to another class table (4 classes: road,
   sidewalk, vehicle, background), with 10 labelled training images; against training from
   scratch on the same 10 images for the same number of steps. Validation: 40 other images.

    python3 benches/transfer_experiment.py --roadseg target/debug/roadseg --work /tmp/tx

Needs numpy and Pillow. Prints a JSON summary; every run folder stays under --work.
"""

import argparse
import json
import pathlib
import subprocess
import time

import numpy as np
from PIL import Image

# Sample ids: road, sidewalk, building, vegetation, sky, vehicle, lane marking.
RECODE = {0: 0, 6: 0, 1: 1, 5: 2, 2: 3, 3: 3, 4: 3, 255: 255}
CLASSES = [
    {"id": 0, "name": "road", "color": [128, 64, 128]},
    {"id": 1, "name": "sidewalk", "color": [244, 35, 232]},
    {"id": 2, "name": "vehicle", "color": [0, 0, 142]},
    {"id": 3, "name": "background", "color": [90, 90, 90]},
]


def run(cmd, **kw):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    start = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    print(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "", flush=True)
    return out.stdout, time.time() - start


def evaluate(roadseg, model, data=None):
    cmd = [roadseg, "eval", "--model", model, "--device", "cpu", "--json"]
    if data:
        cmd += ["--data", data]
    report = json.loads(run(cmd)[0])
    road = next(c for c in report["classes"] if c["name"] == "road")
    return {
        "mean_iou": round(report["mean_iou"], 4),
        "road_iou": round(road["iou"], 4),
        "boundary_f1": round(report["boundary_f1"], 4),
        "boundary_head_f1": report.get("boundary_head_f1"),
    }


def summary(model):
    s = json.loads((pathlib.Path(model) / "summary.json").read_text())
    return {"steps": s["steps"], "seconds": round(s["elapsed_secs"], 1)}


def recoded_dataset(roadseg, work, seed, count, train):
    data = work / f"recoded-{seed}"
    if data.exists():
        return data
    run([roadseg, "sample", "--out", data, "--count", str(count), "--seed", str(seed)])
    lut = np.full(256, 255, dtype=np.uint8)
    for k, v in RECODE.items():
        lut[k] = v
    names = sorted(p.stem for p in (data / "masks").glob("*.png"))
    for name in names:
        path = data / "masks" / f"{name}.png"
        Image.fromarray(lut[np.array(Image.open(path))]).save(path)
    (data / "classes.json").write_text(json.dumps(CLASSES))
    (data / "splits.json").write_text(json.dumps({"train": names[:train], "val": names[train:]}))
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--roadseg", default="target/debug/roadseg")
    ap.add_argument("--work", default="/tmp/roadseg-transfer")
    ap.add_argument("--seed-a", type=int, default=1)
    ap.add_argument("--seed-b", type=int, default=77)
    ap.add_argument("--count-a", type=int, default=100, help="images of sample A")
    ap.add_argument("--epochs", type=int, default=45)
    ap.add_argument("--finetune-epochs", type=int, default=60)
    args = ap.parse_args()
    roadseg, work = args.roadseg, pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    # Every run trains all its epochs: equal steps, so equal time for equal models.
    fixed = work / "no-early-stopping.json"
    fixed.write_text(json.dumps({"early_stopping": None}))
    results = {}

    # 1. Multi-task on sample A (100 images by default).
    sample_a = work / f"sample-{args.seed_a}"
    if not sample_a.exists():
        run([roadseg, "sample", "--out", sample_a, "--seed", str(args.seed_a),
             "--count", str(args.count_a)])
    for name, extra in [("plain", []), ("boundary", ["--aux", "boundary", "--aux-weight", "0.4"])]:
        model = work / f"a-{name}"
        if not (model / "summary.json").exists():
            run([roadseg, "train", "--data", sample_a, "--out", model, "--device", "cpu",
                 "--config", fixed, "--epochs", str(args.epochs)] + extra)
        results[f"multitask_{name}"] = {**evaluate(roadseg, str(model)), **summary(model)}

    # 2. Transfer to sample B with another class table and 10 labelled images.
    data_b = recoded_dataset(roadseg, work, args.seed_b, 50, 10)
    common = ["--data", data_b, "--device", "cpu", "--config", fixed,
              "--epochs", str(args.finetune_epochs), "--batch-size", "5"]
    for name, extra in [("scratch", []), ("init_from", ["--init-from", work / "a-plain"])]:
        model = work / f"b-{name}"
        if not (model / "summary.json").exists():
            run([roadseg, "train", "--out", model] + common + extra)
        results[f"ten_images_{name}"] = {**evaluate(roadseg, str(model)), **summary(model)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
