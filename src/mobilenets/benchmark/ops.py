"""Each op of a .tflite with its MACs and whether XNNPACK runs it, and the rows by op type.

    from mobilenets.benchmark.ops import per_op_rows
    per_op_rows("export/model_int8.tflite")
"""

from __future__ import annotations

import os
from pathlib import Path

PER_OP_NOTE = ("per-op times: LiteRT's Python API has no op profiler, so none are shown; "
               "'delegated' says which ops XNNPACK runs (the C++ benchmark_model "
               "--enable_op_profiling=true gives per-op times)")


def op_delegation(path: "str | os.PathLike", threads: int = 1) -> list[dict]:
    """Every op of a .tflite with its MACs and whether XNNPACK runs it.

    The interpreter keeps the original nodes after delegation and appends
    one DELEGATE node per partition; walking back from each partition's
    outputs to its inputs finds the nodes it replaced.

    Args:
        path: the .tflite file.
        threads: interpreter threads (delegation does not depend on them).
    """
    from mobilenets.predict import open_interpreter
    from mobilenets.profile import profile_tflite

    interp = open_interpreter(path, threads)
    ops = interp._get_ops_details()
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    partitions = [o for o in ops if o["op_name"] == "DELEGATE"]
    producer = {int(t): o["index"] for o in original for t in o["outputs"]}
    by_index = {o["index"]: o for o in original}
    covered: set[int] = set()
    for part in partitions:
        stop = {int(t) for t in part["inputs"]}
        stack = [int(t) for t in part["outputs"]]
        while stack:
            t = stack.pop()
            if t in stop or t not in producer or producer[t] in covered:
                continue
            node = producer[t]
            covered.add(node)
            stack += [int(i) for i in by_index[node]["inputs"] if i >= 0]
    layers = profile_tflite(Path(path)).layers
    macs = {int(layer["name"].split(":")[0]): layer["macs"] for layer in layers}
    return [{"index": o["index"], "op": o["op_name"], "delegated": o["index"] in covered,
             "macs": macs.get(o["index"], 0)} for o in original]


def per_op_rows(path: "str | os.PathLike", name: str | None = None) -> list[dict]:
    """Ops of a .tflite by type: count, how many XNNPACK runs, MACs and their share.

    Args:
        path: the .tflite file.
        name: the model column (default: the path).
    """
    ops = op_delegation(path)
    total = sum(o["macs"] for o in ops) or 1
    by_type: dict[str, dict] = {}
    for o in ops:
        row = by_type.setdefault(o["op"], {"model": name or str(path), "op": o["op"], "count": 0,
                                           "delegated": 0, "not_delegated": 0, "macs_m": 0.0})
        row["count"] += 1
        row["delegated" if o["delegated"] else "not_delegated"] += 1
        row["macs_m"] += o["macs"] / 1e6
    rows = sorted(by_type.values(), key=lambda r: (-r["macs_m"], r["op"]))
    for r in rows:
        r["macs_pct"] = round(100 * r["macs_m"] * 1e6 / total, 1)
        r["macs_m"] = round(r["macs_m"], 2)
    return rows

