"""``python -m aiov serve MODEL [MODEL...]``: serve models over the Open Inference Protocol v2
(KServe v2 REST) on uvicorn, with Prometheus metrics at /metrics.

Models are compiled before the server listens (a model that does not load is a one-line error,
exit status 2). SIGINT/SIGTERM stop accepting connections, let the requests in flight finish
(up to --graceful-timeout seconds), then close the models."""

from __future__ import annotations

import asyncio
import sys


def add_parser(commands):
    parser = commands.add_parser(
        "serve", help="serve models over the Open Inference Protocol v2 (HTTP)", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help="an .onnx or .xml file, named by its stem, or NAME=PATH"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--batch", type=int, default=None, metavar="N", help="automatic batching: compile on BATCH:<device>(N)"
    )
    parser.add_argument(
        "--batch-timeout", type=int, default=None, metavar="MS", help="AUTO_BATCH_TIMEOUT with --batch, in ms"
    )
    parser.add_argument("--device", default="CPU")
    parser.add_argument(
        "--max-body-mb", type=float, default=64.0, metavar="MB", help="largest request body accepted (default 64)"
    )
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="at shutdown, how long requests in flight may take to finish (default 30)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.set_defaults(run=run)


def _fail(message) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    try:
        import uvicorn

        from ..serve import DrainingServer, ServeError, create_app, load_model, parse_model_args
    except ImportError as e:
        return _fail(f"{e}; install the server with: pip install 'aiov[serve]'")
    if args.batch is not None and args.batch < 1:
        return _fail(f"--batch must be >= 1, got {args.batch}")
    if args.batch_timeout is not None and (args.batch is None or args.batch_timeout < 0):
        return _fail("--batch-timeout takes milliseconds >= 0 and needs --batch N")
    try:
        sources = parse_model_args(args.models)
    except ServeError as e:
        return _fail(e)

    async def main():
        models = {}
        for name, path in sources.items():
            models[name] = await load_model(name, path, args.device, None, args.batch, args.batch_timeout)
            print(f"model {name!r}: {path} on {models[name].compiled.get_property('EXECUTION_DEVICES')}", flush=True)
        app = create_app(models, max_body_bytes=int(args.max_body_mb * (1 << 20)))
        for served in models.values():
            served.owned = True  # compiled here: the app closes them at shutdown
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            access_log=args.access_log,
            timeout_graceful_shutdown=args.graceful_timeout,
            log_level="info",
        )
        await DrainingServer(config).serve()

    try:
        _event_loop_run(main())
    except ServeError as e:
        return _fail(e)
    return 0


def _event_loop_run(coro):
    """Runs on uvloop when installed (as uvicorn would), else on asyncio's loop."""
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(coro)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
