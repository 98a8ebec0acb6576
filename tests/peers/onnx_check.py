#!/usr/bin/env python3
"""Runs a roadseg ONNX export with onnxruntime alone and compares it with roadseg.

    onnx_check.py MODEL.onnx logits MANIFEST.json
        MANIFEST lists cases {"input": file, "shape": [n, c, h, w], "logits": file} (and
        "second": file for a second head's output, the graph's second one): raw little-endian
        float32 tensors written by roadseg. Prints, per case, the largest |logit difference|
        and whether the arg-max masks are identical, over every output.

    onnx_check.py MODEL.onnx masks IMAGES_DIR PREDICTIONS_DIR
        Prepares every image of IMAGES_DIR from the file's metadata only (RGB / 255, then
        (x - mean) / std), takes the arg-max of onnxruntime's logits and compares it with the
        index PNG `roadseg predict` wrote for the same image. Prints the number of differing
        pixels per image.

Both modes first run onnx.checker (full check) and print the metadata. Output: one JSON object.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image


def session(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    metadata = {p.key: p.value for p in model.metadata_props}
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inputs = [(i.name, i.shape) for i in sess.get_inputs()]
    outputs = [(o.name, o.shape) for o in sess.get_outputs()]
    return sess, metadata, inputs, outputs


def compare_logits(sess, manifest):
    cases = []
    base = os.path.dirname(manifest)
    for case in json.load(open(manifest)):
        shape = case["shape"]
        x = np.fromfile(os.path.join(base, case["input"]), dtype="<f4").reshape(shape)
        names = [o.name for o in sess.get_outputs()]
        files = [case["logits"]] + ([case["second"]] if "second" in case else [])
        assert len(names) == len(files), f"outputs {names} for {files}"
        got = sess.run(names, {"image": x})
        diff, equal = 0.0, True
        for out, name in zip(got, files):
            expected = np.fromfile(os.path.join(base, name), dtype="<f4").reshape(out.shape)
            diff = max(diff, float(np.max(np.abs(out - expected))))
            equal &= bool(np.array_equal(out.argmax(axis=1), expected.argmax(axis=1)))
        cases.append(
            {
                "shape": shape,
                "output_shape": list(got[0].shape),
                "outputs": len(got),
                "max_abs_diff": diff,
                "argmax_equal": equal,
            }
        )
    return cases


def compare_masks(sess, metadata, images_dir, predictions_dir):
    mean = np.array([float(v) for v in metadata["mean"].split(",")], dtype=np.float32)
    std = np.array([float(v) for v in metadata["std"].split(",")], dtype=np.float32)
    classes = json.loads(metadata["classes"])
    height, width = (int(v) for v in metadata["input_size"].split("x"))
    images = []
    for name in sorted(os.listdir(images_dir)):
        stem, _ = os.path.splitext(name)
        rgb = np.asarray(Image.open(os.path.join(images_dir, name)).convert("RGB"))
        assert rgb.shape[:2] == (height, width), f"{name}: not at the training size"
        x = (rgb.astype(np.float32) / 255.0 - mean) / std  # [h, w, 3]
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # [1, 3, h, w]
        (logits,) = sess.run(["logits"], {"image": x})
        assert logits.shape[1] == len(classes), "one logit channel per class"
        ours = logits[0].argmax(axis=0)
        theirs = np.asarray(Image.open(os.path.join(predictions_dir, stem + ".png")))
        images.append({"name": stem, "differing_pixels": int(np.sum(ours != theirs))})
    return images


def main():
    path, mode = sys.argv[1], sys.argv[2]
    sess, metadata, inputs, outputs = session(path)
    result = {
        "checker": "passed",
        "metadata": metadata,
        "inputs": inputs,
        "outputs": outputs,
    }
    if mode == "logits":
        result["cases"] = compare_logits(sess, sys.argv[3])
    elif mode == "masks":
        result["images"] = compare_masks(sess, metadata, sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {mode}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
