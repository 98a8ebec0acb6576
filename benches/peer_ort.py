#!/usr/bin/env python3
"""onnxruntime peer of `roadseg bench --model`: the run's own exported ONNX file, timed the way
roadseg times it.

One random [1, 3, H, W] image (normal(0, 1), as roadseg's bench draws it), two warm-up runs,
then RUNS timed runs of the session followed by the arg-max over the class axis of every
output (a second head's too), as roadseg reads its prediction back. The session has
`intra_op_num_threads` = THREADS, one inter-op thread, and every graph optimisation enabled.

    roadseg export --model RUN --onnx model.onnx --dynamic
    python3 benches/peer_ort.py model.onnx --size 128x96 --size 256x192 --threads 2 --json

Sizes must be multiples of the file's `size_multiple` (or the traced size without --dynamic).
Prints p50 and p95 in milliseconds per size (`--json` for scripts).
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def parse_size(text):
    w, h = text.lower().split("x")
    return int(w), int(h)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--size", action="append", type=parse_size, default=[])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(0)
    results = []
    for width, height in args.size or [(128, 96)]:
        image = rng.standard_normal((1, 3, height, width), dtype=np.float32)

        def once():
            start = time.perf_counter()
            for logits in session.run(outputs, {"image": image}):
                logits.argmax(axis=1)
            return (time.perf_counter() - start) * 1000.0

        once()
        once()
        times = sorted(once() for _ in range(args.runs))
        results.append(
            {
                "size": [width, height],
                "p50_ms": statistics.median(times),
                "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
                "runs": len(times),
            }
        )
    answer = {
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "outputs": outputs,
        "latency": results,
    }
    if args.json:
        print(json.dumps(answer))
        return
    for r in results:
        w, h = r["size"]
        print(f"onnxruntime {ort.__version__}  {w}x{h}  p50 {r['p50_ms']:.2f} ms  p95 {r['p95_ms']:.2f} ms")


if __name__ == "__main__":
    main()
