"""Per-node times of MobileNetV2 QDQ's depthwise convolutions in aiov (the int8 depthwise
kernel, kernels/depthwise_int8*), on 1 and 2 threads: medians over many profiled inferences.

``python benchmarks/depthwise_int8.py [--runs 40]``"""

import argparse
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    import aiov

    spec = engine._all_specs()["mobilenet_int8"]
    proto = spec.build().SerializeToString()
    feeds = spec.feeds()
    for threads in [int(t) for t in args.threads.split(",")]:
        compiled = aiov.compile_model(proto, "CPU", {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()
        for _ in range(3):
            request.infer(feeds)
        times, shapes = {}, {}
        for _ in range(args.runs):
            request.infer(feeds)
            for info in request.get_profiling_info():
                times.setdefault(info.node_name, []).append(info.real_time.total_seconds() * 1e6)
                shapes[info.node_name] = info.exec_type
        dw = {n: t for n, t in times.items() if _is_depthwise(shapes[n])}
        total = 0.0
        print(f"threads {threads}: median us over {args.runs} runs")
        for name, t in sorted(dw.items(), key=lambda kv: -statistics.median(kv[1])):
            med = statistics.median(t)
            total += med
            print(f"  {name:28s} {med:8.1f}  {shapes[name]}")
        print(f"  {'depthwise total':28s} {total:8.1f}")


def _is_depthwise(what):
    """MobileNetV2's only QuantizedConv layers that keep their channel count are its depthwise
    ones: "aiov_QuantizedConv [1,H,W,C]->[1,H',W',C]"."""
    shapes = re.findall(r"\[([0-9,]+)\]", what)
    return "QuantizedConv" in what and len(shapes) == 2 and shapes[0].split(",")[-1] == shapes[1].split(",")[-1]


if __name__ == "__main__":
    main()
