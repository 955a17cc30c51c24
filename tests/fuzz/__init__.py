"""aiov's fuzzer: structure-aware mutators for ONNX and OpenVINO IR files and compiled-model
blobs, and hypothesis-drawn hostile input values, each case run in a child process (see
harness.py for the classes).

    python -m tests.fuzz --minutes 30 [--seed S] [--out DIR] [--peers]

CI runs a bounded slice through tests/test_fuzz_slice.py."""
