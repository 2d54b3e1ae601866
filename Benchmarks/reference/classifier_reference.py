#!/usr/bin/env python3
"""PyTorch and ONNX Runtime side of the paper-size gated xLSTM classifier benchmark.

Subcommands (run with Training/.venv/bin/python; Benchmarks/classifier.sh drives them):

  prepare --out DIR [--seed S] [--if-needed]
      Builds the paper-size classifier (ClassifierConfig() defaults: 12 streams x 8 mLSTM blocks,
      width 512, 4 heads, 4 labels) with random weights (seeded; randomize_ perturbs every
      parameter), eval mode, and writes a model package plus parity data:
        DIR/model.json, DIR/weights.safetensors   the package the Swift side loads
        DIR/io.safetensors                         input (8,12,512), logits (8,4), gates (8,11)
        DIR/classifier.onnx                        fp32 export, input `streams` (batch,12,512)
        DIR/prepared.json                          seed/layout marker + export parity, written last
      With --if-needed it does nothing when DIR/prepared.json matches the seed and layout.
  time --model DIR --engine {torch,onnxruntime} --batch B [--threads T] [--iterations N] [--warmup W]
      Loads the model in this (fresh) process, warms up, times N forward passes on B turns taken
      from io.safetensors (rows repeated when B > 8) and prints ONE JSON line.
  measure --engine E --batch B --round R --log FILE -- CMD...
      Runs CMD (a `time` process or classifier-bench), prints its JSON line tagged with the round
      and "others_cpus": CPUs' worth of work other processes did meanwhile (noise indicator).
  summarize --runs FILE.jsonl --out FILE.json [--model DIR]
      Groups the JSON lines of `time` / classifier-bench by engine and batch, takes the median of
      the per-run medians, prints a table with ratios and machine facts, writes FILE.json, and
      exits 1 when a parity error exceeds --max-rel-err (default 1e-3, relative to max |logit|).
"""
import argparse
import json
import os
import pathlib
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Training"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchkit import peak_rss_mb  # noqa: E402

ROWS = 8
LABELS = ["ang", "hap", "neu", "sad"]


# ------------------------------------------------------------------------------------------------
# helpers



def percentile(xs, p):
    s = sorted(xs)
    pos = p * (len(s) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def batch_rows(batch: int):
    return [i % ROWS for i in range(batch)]


# ------------------------------------------------------------------------------------------------
# prepare

PREPARE_VERSION = 2  # bump when what `prepare` writes changes, so old bench-out dirs are redone


def is_prepared(out: pathlib.Path, seed: int) -> bool:
    try:
        marker = json.loads((out / "prepared.json").read_text())
    except (OSError, ValueError):
        return False
    files = ("model.json", "weights.safetensors", "io.safetensors", "classifier.onnx")
    return (marker.get("version") == PREPARE_VERSION and marker.get("seed") == seed
            and all((out / f).is_file() for f in files))


def prepare(args) -> None:
    import torch
    import xlstm
    from safetensors.torch import save_file

    from gatedxlstm.model import ClassifierConfig, GatedXLSTMClassifier, randomize_

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "prepared.json"
    if args.if_needed and is_prepared(out, args.seed):
        print(f"prepare: {out} is up to date (seed {args.seed}, layout {PREPARE_VERSION}); not rewritten",
              file=sys.stderr)
        return
    if marker.exists():
        marker.unlink()  # written again only when everything below succeeded
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)  # the xlstm initialisers draw from the global generator
    cfg = ClassifierConfig()
    model = GatedXLSTMClassifier(cfg)
    randomize_(model, g)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"prepare: built paper-size classifier, {n_params / 1e6:.1f} M parameters "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    x = torch.randn(ROWS, len(cfg.streams), cfg.embedding_dim, generator=g)
    x = x / x.norm(dim=-1, keepdim=True)  # CLAP embeddings are L2-normalised
    # Rows 0-3 are mid-dialogue turns with every stream present (row 0 alone is the batch-1
    # input, so batch 1 times the common case); rows 4-7 have streams zeroed as dialogues do.
    x[4, 4:] = 0  # first turn of a dialogue: no context turns
    x[5, 2:4] = 0  # no interlocutor yet
    x[5, 6:8] = 0
    x[6, 8:] = 0  # second turn: no t-2
    x[7, 1] = 0  # missing text modality
    with torch.inference_mode():
        logits, gates = model(x)

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    assert all(v.dtype == torch.float32 for v in state.values())
    save_file(state, out / "weights.safetensors")
    del state
    save_file({"input": x.contiguous(), "logits": logits.contiguous(), "gates": gates.contiguous()},
              out / "io.safetensors")
    manifest = {
        "format": "gatedxlstm-model",
        "format_version": 1,
        "name": f"classifier-paper-size-random-seed{args.seed}",
        "labels": LABELS,
        "weights": "weights.safetensors",
        "classifier": cfg.manifest_section(),
        "ded": {"p0": 0.2, "alpha": 1.0, "beam": 5},
        "provenance": {
            "kind": "benchmark model (random weights; not trained, predictions are meaningless)",
            "recipe": "Benchmarks/reference/classifier_reference.py prepare",
            "weights": f"random, seed {args.seed}",
            "parameters": n_params,
            "torch": torch.__version__,
            "xlstm": getattr(xlstm, "__version__", "2.0.6"),
        },
    }
    (out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"prepare: wrote model.json, weights.safetensors "
          f"({(out / 'weights.safetensors').stat().st_size / 2**20:.0f} MiB), io.safetensors "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    onnx_report = export_onnx(model, x, logits, gates, out / "classifier.onnx", args.threads)
    print(f"prepare: ONNX export {onnx_report['exporter']}, opset {onnx_report['opset']}; "
          f"ONNX Runtime vs PyTorch max abs err {onnx_report['max_abs_err_vs_torch']:.3g} "
          f"(batch 8), {onnx_report['max_abs_err_vs_torch_batch1']:.3g} (batch 1) "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    if onnx_report["max_abs_err_vs_torch"] > 1e-4 or onnx_report["max_abs_err_vs_torch_batch1"] > 1e-4:
        sys.exit("prepare: ONNX Runtime output differs from PyTorch by more than 1e-4")

    marker.write_text(json.dumps({
        "version": PREPARE_VERSION,
        "seed": args.seed,
        "parameters": n_params,
        "torch": torch.__version__,
        "onnx_export": onnx_report,
        "seconds": round(time.perf_counter() - t0, 1),
    }, indent=2) + "\n")
    print(json.dumps({"prepared": str(out), "seed": args.seed, "onnx": onnx_report}))


class _GroupNormConstantGroups:
    """The legacy (TorchScript) ONNX exporter needs group_norm's num_groups as a constant, but
    xlstm's MultiHeadLayerNorm passes NH taken from `input.shape`, which the tracer records as a
    graph value ("Expected node type 'onnx::Constant' for argument 'num_groups'"). During the
    export only, its forward is replaced by the same computation with NH turned into a Python int
    (the head count is fixed by the model). The numerics are unchanged; the export is checked
    against PyTorch afterwards."""

    def __enter__(self):
        import torch.nn.functional as F
        from xlstm.components.ln import MultiHeadLayerNorm

        def forward(ln, input):
            B, NH, S, DH = input.shape
            gn_in = input.transpose(1, 2).reshape(B * S, NH * DH)
            out = F.group_norm(gn_in, num_groups=int(NH), weight=ln.weight_proxy, bias=ln.bias, eps=ln.eps)
            return out.view(B, S, NH, DH).transpose(1, 2)

        self.cls, self.saved = MultiHeadLayerNorm, MultiHeadLayerNorm.forward
        MultiHeadLayerNorm.forward = forward
        return self

    def __exit__(self, *exc):
        self.cls.forward = self.saved
        return False


def export_onnx(model, x, logits, gates, path: pathlib.Path, threads: int) -> dict:
    import warnings

    import numpy as np
    import onnxruntime as ort
    import torch

    opset = 17
    with torch.inference_mode(False), torch.no_grad(), _GroupNormConstantGroups(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about the shape-to-int conversion above
        torch.onnx.export(
            model, (x,), str(path),
            input_names=["streams"], output_names=["logits", "gates"],
            dynamic_axes={"streams": {0: "batch"}, "logits": {0: "batch"}, "gates": {0: "batch"}},
            opset_version=opset, dynamo=False, do_constant_folding=True,
        )
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    xs = x.numpy()
    lo, go = sess.run(["logits", "gates"], {"streams": xs})
    err = max(float(np.abs(lo - logits.numpy()).max()), float(np.abs(go - gates.numpy()).max()))
    lo1, go1 = sess.run(["logits", "gates"], {"streams": xs[:1]})
    err1 = max(float(np.abs(lo1 - logits.numpy()[:1]).max()), float(np.abs(go1 - gates.numpy()[:1]).max()))
    return {"exporter": "torch.onnx.export(dynamo=False)", "opset": opset,
            "onnxruntime": ort.__version__,
            "max_abs_err_vs_torch": err, "max_abs_err_vs_torch_batch1": err1,
            "file_mb": round(path.stat().st_size / 2**20, 1)}


# ------------------------------------------------------------------------------------------------
# time

def load_torch(model_dir: pathlib.Path):
    """Builds the module on the meta device and assigns the safetensors tensors, so the weights
    are held once (the usual low-memory load); the one non-persistent buffer (the causal mask of
    each mLSTM cell) is rebuilt."""
    import torch
    from safetensors.torch import load_file

    from gatedxlstm.model import ClassifierConfig, GatedXLSTMClassifier

    manifest = json.loads((model_dir / "model.json").read_text())
    section = dict(manifest["classifier"])
    cfg = ClassifierConfig(**section, num_labels=len(manifest["labels"]))
    with torch.device("meta"):
        model = GatedXLSTMClassifier(cfg)
    state = load_file(str(model_dir / manifest["weights"]))
    model.load_state_dict(state, strict=True, assign=True)
    del state
    for module in model.modules():
        mask = getattr(module, "causal_mask", None)
        if isinstance(mask, torch.Tensor) and mask.is_meta:
            n = mask.shape[-1]
            module.causal_mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
    leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise RuntimeError(f"tensors left on the meta device: {leftovers[:5]}")
    model.eval()
    return model


def time_engine(args) -> None:
    import numpy as np
    from safetensors.numpy import load_file as load_np

    model_dir = pathlib.Path(args.model)
    io = load_np(str(model_dir / "io.safetensors"))
    rows = batch_rows(args.batch)
    x = np.ascontiguousarray(io["input"][rows])
    ref = io["logits"][rows]

    t_load = time.perf_counter()
    if args.engine == "torch":
        import torch
        torch.set_num_threads(args.threads)
        model = load_torch(model_dir)
        xt = torch.from_numpy(x)

        def run():
            with torch.inference_mode():
                return model(xt)[0].numpy()
    else:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(str(model_dir / "classifier.onnx"), so,
                                    providers=["CPUExecutionProvider"])

        def run():
            return sess.run(["logits"], {"streams": x})[0]
    load_ms = (time.perf_counter() - t_load) * 1e3

    out = None
    for _ in range(args.warmup):
        out = run()
    timings = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        out = run()
        timings.append((time.perf_counter() - t0) * 1e3)
    # CPU seconds this process used per wall second of the timed loop: about `threads` when it had
    # the cores to itself, lower when other work took them (then the timings are inflated).
    cpu_per_wall = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    abs_err = float(np.abs(out - ref).max())
    rel_err = abs_err / max(float(np.abs(ref).max()), 1e-12)
    med = statistics.median(timings)
    result = {
        "engine": args.engine,
        "batch": args.batch,
        "threads": args.threads,
        "median_ms_per_batch": med,
        "median_ms_per_turn": med / args.batch,
        "p10_ms_per_turn": percentile(timings, 0.1) / args.batch,
        "p90_ms_per_turn": percentile(timings, 0.9) / args.batch,
        "iterations": args.iterations,
        "load_ms": load_ms,
        "peak_rss_mb": peak_rss_mb(),
        "max_abs_err_vs_reference": abs_err,
        "max_rel_err_vs_reference": rel_err,
        "cpu_per_wall": cpu_per_wall,
    }
    print(json.dumps(result, sort_keys=True))


# ------------------------------------------------------------------------------------------------
# measure

def _busy_cpu_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def measure(args) -> None:
    """Runs one benchmark process and prints its JSON line, tagged with the round and with how many
    CPUs' worth of work *other* processes did while it ran (machine busy time minus the child's
    own CPU time, per wall second): near 0 on a quiet machine; on 2 cores, 0.5 or more means the
    engine shared its cores and its timings are inflated."""
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, wall0 = _busy_cpu_seconds(), time.perf_counter()
    with open(args.log, "w") as log:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    wall = time.perf_counter() - wall0
    busy = _busy_cpu_seconds() - busy0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(args.log, "a") as log:
        log.write(proc.stdout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    rec = None
    if proc.returncode == 0 and lines:
        try:
            rec = json.loads(lines[-1])
        except json.JSONDecodeError:
            rec = None
    if rec is None:
        rec = {"engine": args.engine, "batch": args.batch,
               "error": f"exit {proc.returncode}, no JSON result; see {args.log}"}
        print(f"  {args.engine} batch {args.batch}: FAILED ({rec['error']})", file=sys.stderr)
        with open(args.log) as log:
            tail = log.read().splitlines()[-5:]
        for ln in tail:
            print(f"    {ln}", file=sys.stderr)
    else:
        rec["others_cpus"] = max(0.0, (busy - own) / wall) if wall > 0 else None
        rec["process_wall_s"] = wall
        try:
            print(f"  {args.engine} batch {args.batch}: {rec['median_ms_per_turn']:.1f} ms/turn "
                  f"(p10 {rec['p10_ms_per_turn']:.1f}, p90 {rec['p90_ms_per_turn']:.1f}), "
                  f"peak RSS {rec['peak_rss_mb']:.0f} MB, abs err {rec['max_abs_err_vs_reference']:.2g}, "
                  f"other processes {rec['others_cpus']:.2f} CPUs, {wall:.0f} s", file=sys.stderr)
        except (KeyError, TypeError, ValueError):
            pass
    rec["round"] = args.round
    print(json.dumps(rec, sort_keys=True))
    sys.exit(0 if "error" not in rec else 1)


# ------------------------------------------------------------------------------------------------
# summarize

def machine_facts() -> dict:
    facts = {"nproc": os.cpu_count(), "platform": platform.platform()}
    try:
        cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        facts["cpu"] = m.group(1).strip() if m else "unknown"
        flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M)
        if flags:
            fl = flags.group(1).split()
            facts["simd"] = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni") if f in fl]
    except OSError:
        pass
    try:
        facts["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    except (OSError, ValueError):
        pass
    try:
        meminfo = pathlib.Path("/proc/meminfo").read_text()
        kb = int(re.search(r"^MemTotal:\s*(\d+)", meminfo, re.M).group(1))
        facts["mem_gib"] = round(kb / 2**20, 1)
    except (OSError, AttributeError):
        pass
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libopenblas0-pthread"],
                             capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libopenblas-dev"],
                                 capture_output=True, text=True)
        if out.returncode == 0 and out.stdout:
            facts["openblas_system"] = out.stdout.strip()
    except OSError:
        pass
    facts["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    try:
        import torch
        facts["torch"] = torch.__version__
        cfg = torch.__config__.show()
        m = re.search(r"BLAS_INFO=(\w+)", cfg)
        if m:
            facts["torch_blas"] = m.group(1)
    except ImportError:
        pass
    try:
        import onnxruntime
        facts["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        out = subprocess.run(["swift", "--version"], capture_output=True, text=True)
        first = (out.stdout or out.stderr).strip().splitlines()
        if first:
            facts["swift"] = first[0]
    except OSError:
        pass
    return facts


def summarize(args) -> None:
    runs, failures = [], []
    for line in pathlib.Path(args.runs).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            failures.append({"engine": "?", "batch": "?", "error": f"unparsable line: {line[:200]}"})
            continue
        missing = [k for k in ("engine", "batch", "median_ms_per_turn", "median_ms_per_batch",
                               "p10_ms_per_turn", "p90_ms_per_turn", "peak_rss_mb",
                               "max_abs_err_vs_reference") if k not in rec]
        if "error" not in rec and missing:
            rec = {"engine": rec.get("engine", "?"), "batch": rec.get("batch", "?"),
                   "error": f"result lacks {missing}"}
        (failures if "error" in rec else runs).append(rec)

    # Relative parity error = max abs error / max |reference logit|; computed here when an engine
    # reports only the absolute error.
    ref_scale = None
    if args.model:
        from safetensors.numpy import load_file as load_np
        ref_scale = float(abs(load_np(str(pathlib.Path(args.model) / "io.safetensors"))["logits"]).max())
    for r in runs:
        if "max_rel_err_vs_reference" not in r and ref_scale:
            r["max_rel_err_vs_reference"] = r["max_abs_err_vs_reference"] / ref_scale

    groups = {}
    for r in runs:
        groups.setdefault((r["engine"], int(r["batch"])), []).append(r)
    engines = [e for e in ("torch", "onnxruntime", "swift") if any(k[0] == e for k in groups)]
    engines += sorted({k[0] for k in groups} - set(engines))
    batches = sorted({k[1] for k in groups})

    summary = {}
    for (engine, batch), rs in sorted(groups.items()):
        rel = [r.get("max_rel_err_vs_reference", float("nan")) for r in rs]
        summary[f"{engine}/b{batch}"] = {
            "engine": engine, "batch": batch, "runs": len(rs),
            "median_ms_per_turn": statistics.median(r["median_ms_per_turn"] for r in rs),
            "median_ms_per_batch": statistics.median(r["median_ms_per_batch"] for r in rs),
            "p10_ms_per_turn": min(r["p10_ms_per_turn"] for r in rs),
            "p90_ms_per_turn": max(r["p90_ms_per_turn"] for r in rs),
            "run_medians_ms_per_turn": [r["median_ms_per_turn"] for r in rs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "load_ms": statistics.median(r.get("load_ms", float("nan")) for r in rs),
            "max_abs_err_vs_reference": max(r["max_abs_err_vs_reference"] for r in rs),
            "max_rel_err_vs_reference": max(rel),
            "others_cpus": [r.get("others_cpus") for r in rs],
        }

    def get(engine, batch, key):
        s = summary.get(f"{engine}/b{batch}")
        return s[key] if s else None

    ratios = {}
    for batch in batches:
        sw = get("swift", batch, "median_ms_per_turn")
        for other in ("torch", "onnxruntime"):
            o = get(other, batch, "median_ms_per_turn")
            if sw and o:
                ratios[f"{other}/swift time per turn, batch {batch}"] = o / sw
    sw_rss = max((s["peak_rss_mb"] for s in summary.values() if s["engine"] == "swift"), default=None)
    t_rss = max((s["peak_rss_mb"] for s in summary.values() if s["engine"] == "torch"), default=None)
    o_rss = max((s["peak_rss_mb"] for s in summary.values() if s["engine"] == "onnxruntime"), default=None)
    if sw_rss and t_rss:
        ratios["swift/torch peak RSS"] = sw_rss / t_rss
    if sw_rss and o_rss:
        ratios["swift/onnxruntime peak RSS"] = sw_rss / o_rss

    facts = machine_facts()
    bad_parity = [k for k, s in summary.items() if not (s["max_rel_err_vs_reference"] <= args.max_rel_err)]
    result = {"machine": facts, "summary": summary, "ratios": ratios, "runs": runs,
              "failures": failures, "parity_limit_rel": args.max_rel_err, "parity_failures": bad_parity}
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    def others(s):
        vals = [v for v in s["others_cpus"] if v is not None]
        return f"{max(vals):.2f}" if vals else "-"

    # table
    print()
    print("Paper-size gated xLSTM classifier (12 streams x 8 mLSTM blocks, width 512), random weights")
    print(f"machine: {facts.get('cpu')}, nproc {facts.get('nproc')}, {facts.get('mem_gib')} GiB; "
          f"torch {facts.get('torch')} ({facts.get('torch_blas', '?')}), "
          f"onnxruntime {facts.get('onnxruntime')}, system OpenBLAS {facts.get('openblas_system', '?')}")
    if facts.get("swift"):
        print(f"         {facts['swift']}")
    print()
    hdr = f"{'engine':<12} {'batch':>5} {'runs':>4} {'ms/turn':>9} {'p10':>8} {'p90':>8} {'ms/batch':>9} " \
          f"{'load ms':>8} {'peak RSS MB':>11} {'abs err':>9} {'rel err':>9} {'others':>6}"
    print(hdr)
    print("-" * len(hdr))
    for batch in batches:
        for engine in engines:
            s = summary.get(f"{engine}/b{batch}")
            if not s:
                print(f"{engine:<12} {batch:>5}  (no result)")
                continue
            print(f"{engine:<12} {batch:>5} {s['runs']:>4} {s['median_ms_per_turn']:>9.1f} "
                  f"{s['p10_ms_per_turn']:>8.1f} {s['p90_ms_per_turn']:>8.1f} {s['median_ms_per_batch']:>9.1f} "
                  f"{s['load_ms']:>8.0f} {s['peak_rss_mb']:>11.0f} {s['max_abs_err_vs_reference']:>9.2e} "
                  f"{s['max_rel_err_vs_reference']:>9.2e} {others(s):>6}")
    print()
    if ratios:
        for k, v in ratios.items():
            print(f"  {k:<40} {v:6.2f}")
    else:
        print("  (no ratios: the swift engine produced no result)")
    print()
    busy = [(r["engine"], r["batch"], r["others_cpus"]) for r in runs if (r.get("others_cpus") or 0) >= 0.25]
    if busy:
        print("note: other processes used CPU during " + ", ".join(f"{e}/b{b} ({o:.2f} CPUs)" for e, b, o in busy)
              + "; those timings are inflated (rerun on a quiet machine)")
    else:
        print("other processes stayed below 0.25 CPUs during every run")
    print(f"ms/turn: median over runs of each run's median; p10/p90: extremes over runs; "
          f"others: max CPUs used by other processes during a run. "
          f"Written to {args.out}")
    status = 0
    for f in failures:
        print(f"FAILED: {f['engine']} batch {f['batch']}: {f['error']}", file=sys.stderr)
        status = 1
    for k in bad_parity:
        print(f"PARITY: {k} relative error {summary[k]['max_rel_err_vs_reference']:.3g} "
              f"> {args.max_rel_err}", file=sys.stderr)
        status = 1
    sys.exit(status)


# ------------------------------------------------------------------------------------------------

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    pp = sub.add_parser("prepare", help="write the paper-size model package, parity data and ONNX file")
    pp.add_argument("--out", required=True)
    pp.add_argument("--seed", type=int, default=2503)
    pp.add_argument("--threads", type=int, default=2)
    pp.add_argument("--if-needed", action="store_true",
                    help="do nothing when DIR/prepared.json matches the seed and this script's layout")

    pt = sub.add_parser("time", help="time one engine in this process; prints one JSON line")
    pt.add_argument("--model", required=True)
    pt.add_argument("--engine", choices=["torch", "onnxruntime"], required=True)
    pt.add_argument("--batch", type=int, default=1)
    pt.add_argument("--threads", type=int, default=2)
    pt.add_argument("--iterations", type=int, default=30)
    pt.add_argument("--warmup", type=int, default=3)

    pm = sub.add_parser("measure", help="run one benchmark command, tag its JSON line (used by classifier.sh)")
    pm.add_argument("--engine", required=True)
    pm.add_argument("--batch", type=int, required=True)
    pm.add_argument("--round", type=int, default=1)
    pm.add_argument("--log", required=True)
    pm.add_argument("cmd", nargs=argparse.REMAINDER)

    ps = sub.add_parser("summarize", help="aggregate JSON lines into a table and FILE.json")
    ps.add_argument("--runs", required=True)
    ps.add_argument("--out", required=True)
    ps.add_argument("--max-rel-err", type=float, default=1e-3)
    ps.add_argument("--model", help="model DIR; its io.safetensors scales absolute parity errors")

    args = p.parse_args()
    if args.command == "prepare":
        prepare(args)
    elif args.command == "time":
        if args.batch < 1 or args.iterations < 1 or args.warmup < 0:
            p.error("--batch and --iterations must be >= 1, --warmup >= 0")
        time_engine(args)
    elif args.command == "measure":
        measure(args)
    else:
        summarize(args)


if __name__ == "__main__":
    main()
