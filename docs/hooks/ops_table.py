"""mkdocs hook: the supported-ops page is written from the op registry at build time (the
registry is the one description of an op; this page never goes stale)."""

from __future__ import annotations

MARKER = "<!-- ops-table -->"


def _table() -> str:
    from aiov._core import op_schema
    from aiov.frontends.onnx import supported_ops

    rows = ["| op | OpenVINO IR (opset) | ONNX (from opset) | opset builder | attributes |", "|---|---|---|---|---|"]
    for op in sorted(op_schema(), key=lambda o: o["type"]):
        ir = ", ".join(op["ir_types"]) + (f" ({op['ir_version']})" if op["ir_types"] else "")
        onnx = ", ".join(f"{name} ({since})" for name, since, _until in op["onnx"])
        builder = f"`{op['builder']}`" if op["builder"] else ""
        attrs = ", ".join(a["name"] for a in op["attrs"])
        rows.append(f"| {op['type']} | {ir} | {onnx} | {builder} | {attrs} |")
    frontends = supported_ops()
    return (
        f"{len(rows) - 2} engine ops; the ONNX reader converts {len(frontends)} ONNX op types:\n\n"
        + "\n".join(rows)
        + "\n\nONNX op types the reader converts: "
        + ", ".join(f"`{op}`" for op in sorted(frontends))
        + ".\n"
    )


def on_page_markdown(markdown, page, config, files):
    if MARKER in markdown:
        return markdown.replace(MARKER, _table())
    return markdown
