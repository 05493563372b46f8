#!/usr/bin/env python3
# plot.py - turn bench/restore (--samples) and bench/peer-qemu JSON into the PNGs of docs/benchmarks.md, with gnuplot.
"""
Outputs, in --out (docs/img by default):
  restore-cdf.png      CDF of restore_to_ready per restore mode (bench/restore --samples)
  restore-phases.png   stacked bar of the RestoreProfile phases (p50 of each) per mode, topped up
                       to the p50 of restore_to_ready
  peer-restore-cdf.png CDF of QEMU vs snapbox restore (process start to first PONG) and the
                       pooled library-level restore (bench/peer-qemu --json), when --peer is given
Needs gnuplot (make plot-deps: Debian's gnuplot-nox).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

# RestoreProfile phases in restore order (p50 of each), then three derived segments so that a
# bar's height is the p50 of restore_to_ready: the rest of total_without_resume, the vCPU start
# (total_with_resume - total_without_resume, which holds resume_kvm_run) and the first PING.
PHASES = [
    "snapshot_open", "kvm_fd_open", "kvm_create_vm", "vm_arch_setup", "guest_memory_mmap",
    "kvm_set_user_memory_region", "vcpu_creation", "cpuid_config", "memory_state_write",
    "device_state_restore", "vcpu_state_restore",
]
DERIVED = ["other (rest of total_without_resume)", "vCPU start (to KVM_RUN)", "first PING round trip"]
COLOURS = [
    "#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d", "#59a14f", "#e15759", "#8cd17d", "#b6992d",
    "#499894", "#86bcb6", "#ff9d9a", "#79706e", "#d37295", "#9c755f",
]
SERIES_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"]
TERMINAL = "set terminal pngcairo size 820,460 font 'DejaVu Sans,10' noenhanced"


def cdf_rows(values_ns):
    v = sorted(values_ns)
    n = len(v)
    # Start at 0 so the first step is drawn.
    return ["%.6f 0" % (v[0] / 1e6)] + ["%.6f %.6f" % (x / 1e6, (i + 1) / n) for i, x in enumerate(v)]


def write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def gnuplot(script):
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        sys.exit("plot.py: gnuplot failed:\n" + r.stderr)


def title2(title, subtitle):
    """A two-line gnuplot title (double quotes, so \\n is a newline)."""
    clean = lambda t: t.replace("\\", "/").replace('"', "'")
    return '"%s\\n%s"' % (clean(title), clean(subtitle))


def host_line(doc):
    h = doc.get("host", {})
    return "%s, %s CPUs, KVM %s, %s" % (h.get("cpu", "?"), h.get("cpus", "?"),
                                        h.get("kvm_backend", "?"), h.get("kernel", "?"))


def plot_cdfs(series, title, subtitle, out, tmp, name):
    """series: list of (label, [ns...]). A log-x CDF, one step line per series."""
    plots = []
    for i, (label, values) in enumerate(series):
        data = os.path.join(tmp, "%s-%d.dat" % (name, i))
        write(data, cdf_rows(values))
        plots.append("'%s' using 1:2 with steps lw 2 lc rgb '%s' title '%s (n=%d)'"
                     % (data, SERIES_COLOURS[i % len(SERIES_COLOURS)], label, len(values)))
    gnuplot("\n".join([
        TERMINAL.replace("820,460", "820,500"),
        "set output '%s'" % os.path.join(out, name + ".png"),
        "set title %s" % title2(title, subtitle),
        "set logscale x 10",
        "set xlabel 'ms (log scale)'",
        "set ylabel 'fraction of runs'",
        "set yrange [0:1.02]",
        "set grid xtics mxtics ytics",
        "set bmargin 6",
        "set key horizontal center at screen 0.5, screen 0.05",
        "plot " + ", ".join(plots),
    ]))


def plot_restore(doc, out, tmp):
    modes = doc["modes"]
    series = []
    for name, m in modes.items():
        s = m.get("samples_ns", {}).get("restore_to_ready")
        if not s:
            sys.exit("plot.py: %s has no samples_ns for mode %s: run bench/restore with --samples"
                     % ("the restore JSON", name))
        series.append((name, s))
    plot_cdfs(series, "snapbox restore to the first PONG (restore_to_ready, library level)",
              "%d runs per mode; %s" % (doc.get("runs", 0), host_line(doc)), out, tmp, "restore-cdf")

    # Stacked bar: p50 of each phase per mode, plus what the PING adds on top.
    header = ["mode"] + PHASES + DERIVED
    rows = []
    for name, m in modes.items():
        p = m["phases_ns"]
        p50 = lambda k: p[k]["p50"] / 1e6
        vals = [p50(ph) for ph in PHASES]
        vals += [max(0.0, p50("total_without_resume") - sum(vals)),
                 max(0.0, p50("total_with_resume") - p50("total_without_resume")),
                 max(0.0, p50("restore_to_ready") - p50("total_with_resume"))]
        rows.append("%s %s %.6f" % (name, " ".join("%.6f" % v for v in vals), sum(vals)))
    data = os.path.join(tmp, "phases.dat")
    write(data, ["# " + " ".join(header + ["sum"])] + rows)
    plots = []
    for i, ph in enumerate(PHASES + DERIVED):
        plots.append("'%s' using %d%s lc rgb '%s' title '%s'"
                     % (data, i + 2, ":xtic(1)" if i == 0 else "", COLOURS[i % len(COLOURS)], ph))
    # The stacked height over each bar: restore_to_ready p50 unless a p50 difference was negative.
    plots.append("'%s' using 0:%d:(sprintf('%%.2f ms', $%d)) with labels offset 0,0.8 notitle"
                 % (data, len(header) + 1, len(header) + 1))
    gnuplot("\n".join([
        TERMINAL.replace("820,460", "820,520"),
        "set output '%s'" % os.path.join(out, "restore-phases.png"),
        "set title %s" % title2("RestoreProfile phases per mode (p50 of each phase)", host_line(doc)),
        "set style data histograms",
        "set style histogram rowstacked",
        "set style fill solid 0.9 border -1",
        "set boxwidth 0.6",
        "set ylabel 'ms (p50 per phase, stacked)'",
        "set yrange [0:*]",
        "set grid ytics",
        "set key outside right top",
        "plot " + ", ".join(plots),
    ]))


def plot_peer(doc, out, tmp):
    restore = doc["restore"]
    series = [("QEMU -M microvm -incoming, process start", restore["qemu_ns"]),
              ("snapbox restore --mode cow CLI, process start", restore["snapbox_ns"])]
    pooled = doc.get("pooled", {}).get("samples_ns", {}).get("restore_to_ready")
    if pooled:
        series.append(("snapbox pooled cow, library level", pooled))
    cfg = doc.get("config", {})
    plot_cdfs(series, "Restore to the first PONG, same probe guest: QEMU vs snapbox (%s MiB, FILL %s MiB)"
              % (cfg.get("mem_mib"), cfg.get("fill_mib")), host_line(doc),
              out, tmp, "peer-restore-cdf")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description="Benchmark JSON to PNG (gnuplot).")
    ap.add_argument("--restore", help="bench/restore --samples --json output")
    ap.add_argument("--peer", help="bench/peer-qemu --json output (optional)")
    ap.add_argument("--out", default=os.path.join(root, "docs", "img"))
    args = ap.parse_args()
    if not shutil.which("gnuplot"):
        sys.exit("plot.py: gnuplot not found: make plot-deps installs gnuplot-nox")
    if not args.restore and not args.peer:
        ap.error("give --restore and/or --peer")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="snapbox-plot-") as tmp:
        for path, fn in ((args.restore, plot_restore), (args.peer, plot_peer)):
            if not path:
                continue
            if not os.path.exists(path):
                print("plot.py: %s missing, skipped" % path, file=sys.stderr)
                continue
            with open(path) as f:
                fn(json.load(f), args.out, tmp)
    for name in sorted(os.listdir(args.out)):
        if name.endswith(".png"):
            print("%s (%d bytes)" % (os.path.join(args.out, name), os.path.getsize(os.path.join(args.out, name))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
