"""``python -m aiov COMMAND``: ``benchmark`` (throughput and latency of a model), ``info``
(its inputs, outputs and ops, and whether aiov supports every op) and ``serve`` (an inference
server speaking the Open Inference Protocol v2)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiov", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    from ._cli import benchmark, info, serve

    benchmark.add_parser(commands)
    info.add_parser(commands)
    serve.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    code = main()
    from ._cli.benchmark import _PEERS

    if _PEERS:
        # openvino's and onnxruntime's objects, destroyed at exit, now and then deadlock
        # (seen: a --compare run that never exits). Their results are printed: leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
