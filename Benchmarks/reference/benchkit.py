"""What the reference benchmark scripts share: peak RSS, an ONNX Runtime session set up like
every engine here (2 threads, all graph optimisations), and the warm-up + timed loop."""
import math
import resource
import statistics
import time


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM), in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def onnx_session(path, threads: int):
    """An ONNX Runtime CPU session: `threads` intra-op threads, one inter-op, ORT_ENABLE_ALL."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def timed(run, iterations: int, warmup: int):
    """Runs `run` `warmup` times, then `iterations` timed times. Returns (last result, summary)
    with the summary's median_ms, min_ms and p90_ms."""
    for _ in range(warmup):
        run()
    times = []
    result = None
    for _ in range(iterations):
        t = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return result, {"median_ms": statistics.median(times), "min_ms": times[0],
                    "p90_ms": times[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)]}
