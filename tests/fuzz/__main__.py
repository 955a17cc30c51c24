"""``python -m tests.fuzz --minutes N [--seed S] [--out DIR] [--peers]``

Runs a fuzzing campaign for N minutes, prints the summary (counts per class, per mutator and
per API) and writes it as summary.json, with every crashing or hanging input, under the
output directory (printed at the start)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None, help="default: time-based (printed)")
    parser.add_argument("--out", default=None, help="where crashing inputs and summary.json go")
    parser.add_argument(
        "--peers", action="store_true", help="also run every mutated model on onnxruntime and openvino, for comparison"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per case before it counts as a hang")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    out = args.out or tempfile.mkdtemp(prefix="aiov-fuzz-")
    os.makedirs(out, exist_ok=True)
    print(f"[fuzz] seed {seed}; crashing inputs and summary.json go to {out}", flush=True)
    from .campaign import CASE_TIMEOUT, Campaign

    campaign = Campaign(
        seed=seed,
        out_dir=out,
        peers=args.peers,
        timeout=args.timeout or CASE_TIMEOUT,
        log=lambda m: print(m, flush=True),
    )
    print(
        f"[fuzz] {len(campaign.onnx_seeds)} ONNX seeds, {len(campaign.ir_seeds)} IR seeds, "
        f"{len(campaign.blob_seeds)} blob seeds, "
        f"{len(campaign.input_models)} input models",
        flush=True,
    )
    try:
        summary = campaign.run(args.minutes * 60)
    finally:
        import shutil

        shutil.rmtree(campaign.workdir, ignore_errors=True)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(dict(summary.as_dict(), seed=seed, minutes=args.minutes), f, indent=1)
    print(summary.text())
    print(f"[fuzz] summary: {os.path.join(out, 'summary.json')}")
    # Exit status 1 for any crash or hang of aiov.
    return 1 if summary.aiov_failures() else 0


if __name__ == "__main__":
    sys.exit(main())
