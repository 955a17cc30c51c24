"""A fuzzing campaign: mutated ONNX and IR models, compiled-model blobs and hostile input
values, for a time budget, each case in a forked child; counts per class, per mutator and per
API, and every crashing or hanging input saved to disk."""

from __future__ import annotations

import collections
import json
import os
import random
import tempfile
import time

import numpy as np

from . import cases, harness, inputs, mutate_blob, mutate_ir, mutate_onnx, seeds

CASE_TIMEOUT = 20.0  # generous: the machine may be shared; a real hang never finishes


class Summary:
    def __init__(self):
        self.counts = collections.defaultdict(collections.Counter)  # group -> class -> n
        self.by_mutator = collections.defaultdict(collections.Counter)
        self.unclear = collections.Counter()  # detail -> n
        self.failures = []  # crash/hang records
        self.cases = 0

    def record(self, group, mutator, cls, detail, saved=None):
        self.cases += 1
        self.counts[group][cls] += 1
        if mutator:
            self.by_mutator[f"{group}:{mutator}"][cls] += 1
        if cls == "unclear" and not group.startswith("peer"):
            self.unclear[detail[:160]] += 1
        if cls in ("crash", "hang"):
            self.failures.append({"group": group, "mutator": mutator, "class": cls, "detail": detail, "saved": saved})

    def aiov_failures(self):
        """aiov's crashes and hangs (the peers' are counted, not failed on)."""
        return [f for f in self.failures if not f["group"].startswith("peer")]

    def as_dict(self):
        return {
            "cases": self.cases,
            "counts": {g: dict(c) for g, c in sorted(self.counts.items())},
            "by_mutator": {g: dict(c) for g, c in sorted(self.by_mutator.items())},
            "unclear": self.unclear.most_common(40),
            "failures": self.failures,
        }

    def text(self):
        lines = [f"{self.cases} cases"]
        width = max([len(g) for g in self.counts] + [10])
        header = "".join(f"{c:>9}" for c in harness.CLASSES)
        lines.append(f"{'group':<{width}} {header}")
        for group, counter in sorted(self.counts.items()):
            lines.append(f"{group:<{width}} " + "".join(f"{counter.get(c, 0):>9}" for c in harness.CLASSES))
        lines.append("per mutator:")
        width = max([len(g) for g in self.by_mutator] + [10])
        for group, counter in sorted(self.by_mutator.items()):
            lines.append(f"  {group:<{width}} " + "".join(f"{counter.get(c, 0):>9}" for c in harness.CLASSES))
        if self.unclear:
            lines.append("unclear errors (most frequent):")
            lines += [f"  {n:>5} x {d}" for d, n in self.unclear.most_common(15)]
        if self.failures:
            lines.append("crashes and hangs:")
            lines += [
                f"  {f['group']} {f['mutator']} {f['class']}: {f['detail'][:150]} -> {f['saved']}"
                for f in self.failures
            ]
        return "\n".join(lines)


class Campaign:
    def __init__(self, seed=0, out_dir=None, peers=False, timeout=CASE_TIMEOUT, log=print):
        self.rng = random.Random(seed)
        self.seed = seed
        self.peers = peers
        self.timeout = timeout
        self.log = log
        self.out_dir = out_dir
        self.summary = Summary()
        self.workdir = tempfile.mkdtemp(prefix="aiov-fuzz-work-")
        os.makedirs(os.path.join(self.workdir, "model"))
        # A file in the working directory (and one beside the model) that external-data
        # locations may try to reach.
        for where in (self.workdir, os.path.join(self.workdir, "model")):
            with open(os.path.join(where, "weights.bin"), "wb") as f:
                f.write(np.arange(4096, dtype=np.float32).tobytes())
        self.onnx_seeds = seeds.onnx_seeds()
        self.onnx_names = sorted(self.onnx_seeds)
        self.ir_seeds = seeds.ir_seeds(self.onnx_seeds)
        self.ir_names = sorted(self.ir_seeds)
        self.blob_seeds = seeds.blob_seeds(self.onnx_seeds)
        self.blob_names = sorted(self.blob_seeds)
        self.input_models = inputs.input_models()
        self.counter = 0
        self.generator_errors = 0

    # -- saving --
    def _save(self, kind, files: dict, meta: dict):
        if self.out_dir is None:
            return None
        self.counter += 1
        path = os.path.join(self.out_dir, f"{kind}-{self.seed}-{self.counter:04d}")
        os.makedirs(path, exist_ok=True)
        for name, data in files.items():
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(
                os.path.join(path, name),
                mode,
                **({} if mode == "wb" else {"encoding": "utf-8", "errors": "surrogatepass"}),
            ) as f:
                f.write(data)
        with open(os.path.join(path, "case.json"), "w") as f:
            json.dump(meta, f, indent=1, default=repr)
        return path

    def _config(self):
        """Most cases compile as they come; some with an f16 or bf16 precision hint, which
        sends the model through the half-precision kernels and the passes that convert to them."""
        if self.rng.random() < 0.25:
            return {"INFERENCE_PRECISION_HINT": self.rng.choice(["f16", "bf16"])}
        return None

    def _run(self, fn):
        """run_case, with a second chance for a timeout: on a loaded machine a slow case is
        not a hang, so only one that also misses three times the budget counts as one."""
        cls, detail = harness.run_case(fn, self.timeout)
        if cls == "hang":
            cls, detail = harness.run_case(fn, self.timeout * 3)
            if cls != "hang":
                detail = f"(slow: over {self.timeout:.0f} s once) {detail}"
        return cls, detail

    # -- one case of each kind --
    def onnx_case(self):
        name = self.rng.choice(self.onnx_names)
        data, mutator, notes = mutate_onnx.mutate(self.onnx_seeds[name], self.rng)
        by_path = mutator == "external_data" or self.rng.random() < 0.2
        case_seed = self.rng.randrange(2**31)
        config = self._config()
        cls, detail = self._run(lambda: cases.onnx_case(data, self.workdir, by_path, case_seed, config))
        saved = None
        if cls in ("crash", "hang"):
            meta = {
                "seed": name,
                "mutator": mutator,
                "notes": notes,
                "by_path": by_path,
                "case_seed": case_seed,
                "config": config,
            }
            saved = self._save("onnx", {"model.onnx": data}, dict(meta, **{"class": cls, "detail": detail}))
        self.summary.record("onnx", mutator, cls, detail, saved)
        if self.peers:
            for peer, fn in (
                ("onnxruntime", lambda: cases.onnxruntime_case(data, self.workdir, case_seed)),
                ("openvino", lambda: cases.openvino_case("onnx", data, self.workdir, case_seed)),
            ):
                pcls, pdetail = harness.run_case(fn, self.timeout)
                self.summary.record(f"peer-{peer}:onnx", mutator, pcls, pdetail)
        return cls

    def ir_case(self):
        if not self.ir_names:
            return None
        name = self.rng.choice(self.ir_names)
        xml, bin_data, mutator, notes = mutate_ir.mutate(self.ir_seeds[name], self.rng)
        case_seed = self.rng.randrange(2**31)
        config = self._config()
        cls, detail = self._run(lambda: cases.ir_case(xml, bin_data, self.workdir, case_seed, config))
        saved = None
        if cls in ("crash", "hang"):
            meta = {"seed": name, "mutator": mutator, "notes": notes, "case_seed": case_seed, "config": config}
            files = {"model.xml": xml, "model.bin": bin_data}
            saved = self._save("ir", files, dict(meta, **{"class": cls, "detail": detail}))
        self.summary.record("ir", mutator, cls, detail, saved)
        if self.peers:
            pcls, pdetail = harness.run_case(
                lambda: cases.openvino_case("ir", (xml, bin_data), self.workdir, case_seed), self.timeout
            )
            self.summary.record("peer-openvino:ir", mutator, pcls, pdetail)
        return cls

    def blob_case(self):
        if not self.blob_names:
            return None
        name = self.rng.choice(self.blob_names)
        data, mutator, notes = mutate_blob.mutate(self.blob_seeds[name], self.rng)
        case_seed = self.rng.randrange(2**31)
        # A third through CACHE_DIR: the blob under the cache key of the model file it came from.
        model_name, _, hint = name.partition("@")
        via_cache = self.rng.random() < 0.33
        config = {"INFERENCE_PRECISION_HINT": hint} if hint else None
        if via_cache:
            source = self.onnx_seeds[model_name].SerializeToString()
            cls, detail = self._run(lambda: cases.cached_blob_case(data, source, self.workdir, case_seed, config))
        else:
            cls, detail = self._run(lambda: cases.blob_case(data, case_seed))
        group = "blob-cache" if via_cache else "blob"
        if via_cache and cls == "success" and "refused" in detail:  # the file compiled instead
            group = "blob-cache-refused"
        saved = None
        if cls in ("crash", "hang"):
            meta = {"seed": name, "mutator": mutator, "notes": notes, "case_seed": case_seed, "config": config}
            saved = self._save(group, {"model.blob": data}, dict(meta, **{"class": cls, "detail": detail}))
        self.summary.record(group, mutator, cls, detail, saved)
        return cls

    def input_cases(self, api, count):
        """`count` hypothesis-drawn inputs through `api` on one of the input models."""
        import onnx
        import onnx.helper
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as hypothesis_seed

        model_name = self.rng.choice(sorted(self.input_models))
        model_bytes = self.input_models[model_name]
        spec = []
        for i in onnx.load_from_string(model_bytes).graph.input:
            ttype = i.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else 2 for d in ttype.shape.dim]
            spec.append((i.name, dims, onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type)))
        group = f"inputs-{api}"

        @hypothesis_seed(self.rng.randrange(2**31))
        @settings(
            max_examples=count,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(inputs.hostile_inputs(spec))
        def body(values):
            cls, detail = self._run(lambda: inputs.run_api(api, model_bytes, values))
            saved = None
            if cls in ("crash", "hang"):
                saved = self._save(
                    f"input-{api}",
                    {"model.onnx": model_bytes, "inputs.txt": repr(values)[:100000]},
                    {"model": model_name, "api": api, "class": cls, "detail": detail},
                )
            self.summary.record(group, model_name, cls, detail, saved)

        try:
            body()
        except Exception as exc:  # a bug of the generator, not of aiov: note it and go on
            self.log(f"[fuzz] input generation failed: {type(exc).__name__}: {str(exc)[:200]}")

    def run(self, seconds: float, mix=(("onnx", 5), ("ir", 3), ("blob", 2), ("inputs", 2))):
        """Runs cases until `seconds` have passed; returns the Summary."""
        end = time.monotonic() + seconds
        kinds = [k for k, w in mix for _ in range(w)]
        last_report = time.monotonic()
        while time.monotonic() < end:
            kind = self.rng.choice(kinds)
            try:
                if kind == "onnx":
                    self.onnx_case()
                elif kind == "ir":
                    self.ir_case()
                elif kind == "blob":
                    self.blob_case()
                else:
                    self.input_cases(self.rng.choice(inputs.APIS), 5)
            except Exception as exc:  # a mutator that cannot express its change: not aiov's
                self.generator_errors += 1
                self.log(f"[fuzz] {kind} case generation failed: {type(exc).__name__}: {str(exc)[:200]}")
            if time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                self.log(
                    f"[fuzz] {self.summary.cases} cases; "
                    + ", ".join(f"{g}: {dict(c)}" for g, c in sorted(self.summary.counts.items()))
                )
        return self.summary
