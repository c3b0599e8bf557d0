#!/usr/bin/env python3
"""The scale benchmark (`make bench-scale N=...`; issue 27, item 4): what a tweet dump of N tweets costs
cold, what the same dump plus 1% new tweets costs after it, and what the same dump again (a no-op) costs.

    scripts/bench_scale.py --n 10000 --model DIR --out results/scale/n10000
    scripts/bench_scale.py --n 10000 --model DIR --before-bin /work/before-bin --out results/scale/n10000

In a fresh artifacts folder (the trained chunker copied in, as scripts/bench.py does: it is trained once
per machine), every stage through predict runs as its own process, in order: ingest, chunk, ground,
features, graphs, predict (MiniLM: --encoder minilm --precision f32 --text-layers all --pooling mean, as
`make train ENCODER=minilm`; predict with the model given by --model), then `status --verify` (as `make
status` runs it). Each stage still resolves its upstream stages itself (cache hits), as under make. Runs:

  cold       the N-tweet dump (scripts/make_dump.py) in the fresh store;
  grown      the same N tweets plus 1% new ones appended (--new-share);
  noop       the grown dump again, unchanged;
  inserted   (--inserted) the N tweets plus 1% other new tweets at random positions, after the no-op.

Per stage and run: wall seconds; peak RSS (MiB, from wait4); files and bytes the artifacts folder gained
(regular files and links; bytes of regular files), also per part of the store; the process's wchar and
write_bytes from /proc/<pid>/io, sampled every 0.1 s (the last sample before it exits: a floor); the
1-minute load average at start; the CPU time other processes used while it ran, in cores (`others`: the
machine's busy time from /proc/stat less the stage's own user + system time, over the wall time), which is
the contention on a shared machine. A watchdog kills a stage whose RSS (with its children) passes
--max-rss-gib and records it; the run's later stages are then skipped.

--before-bin DIR runs the same for a second set of binaries (an earlier snapshot of the code) in its own
fresh store, before the first set, and the Markdown puts the two side by side. Every figure goes to
<out>.jsonl as it lands (one line per stage and run, with the machine, date and git commit); <out>.md is
rewritten after each run. Python 3.11 standard library only.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
STAGES = ["ingest", "chunk", "ground", "features", "graphs", "predict", "status"]
RUNS = ["cold", "grown", "noop", "inserted"]
# `make train ENCODER=minilm`'s text features (Makefile: TEXT with ENCODER=minilm).
TEXT = ["--encoder", "minilm", "--precision", "f32", "--text-layers", "all", "--pooling", "mean",
        "--storage", "f16", "--text-context", "none"]
# What `make status ENCODER=minilm` adds: the frozen recipe's training settings.
TRAIN = ["--model", "umgf", "--mode", "frozen", "--seed", "1", "--max-epochs", "10"]
HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --- the machine ----------------------------------------------------------------------------------------

def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "mem_gib": round(mem / 2**30, 1),
            "host": os.uname().nodename}


def git_commit(cwd=ROOT):
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def loadavg():
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_busy_seconds():
    """Seconds of CPU the whole machine has spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return (sum(values) - idle) / HZ


def others_busy(seconds=2.0):
    """Cores other processes keep busy now (sampled over `seconds`)."""
    a = cpu_busy_seconds()
    time.sleep(seconds)
    return (cpu_busy_seconds() - a) / seconds


def wait_for_quiet(threshold, limit):
    """Waits (at most `limit` seconds) until other processes use under `threshold` cores; returns the
    seconds waited and the last sample."""
    if threshold <= 0:
        return 0.0, None
    start = time.monotonic()
    busy = others_busy()
    while busy >= threshold and time.monotonic() - start < limit:
        log(f"  waiting for a quieter machine: {busy:.2f} cores busy (threshold {threshold})")
        time.sleep(20)
        busy = others_busy()
    return time.monotonic() - start, busy


def wait_for_file(path, limit):
    """Waits until `path` exists (at most `limit` seconds); returns the seconds waited."""
    start = time.monotonic()
    while not path.exists() and time.monotonic() - start < limit:
        time.sleep(15)
    return time.monotonic() - start


# --- a folder's files -----------------------------------------------------------------------------------

def tree(path):
    """{part: (files, bytes)} of a folder: its store's memo, blobs, runs and the rest, and 'all'.
    Files are regular files and links; bytes are regular files' sizes."""
    parts = {}
    root = Path(path)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).parts
        if rel[:1] == ("store",) and len(rel) >= 2:
            part = f"store/{rel[1]}"
        elif rel[:1] == ("store",):
            part = "store"
        else:
            part = "views"
        # Links to folders are listed among dirnames by os.walk and never entered: count them as files.
        names = filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        files, size = 0, 0
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            files += 1
            if not os.path.islink(os.path.join(dirpath, name)):
                size += st.st_size
        f, b = parts.get(part, (0, 0))
        parts[part] = (f + files, b + size)
    total = (sum(f for f, _ in parts.values()), sum(b for _, b in parts.values()))
    parts["all"] = total
    return parts


def tree_delta(before, after):
    return {k: (after.get(k, (0, 0))[0] - before.get(k, (0, 0))[0], after.get(k, (0, 0))[1] - before.get(k, (0, 0))[1])
            for k in sorted(set(before) | set(after))}


# --- one process ----------------------------------------------------------------------------------------

def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                children = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                out += [int(c) for c in children]
                todo += [int(c) for c in children]
        except OSError:
            pass
    return out


def rss_bytes(pid):
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def proc_io(pid):
    try:
        out = {}
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            key, value = line.split(":")
            out[key] = int(value)
        return out
    except (OSError, ValueError):
        return None


def measure(argv, cwd, env, log_path, max_rss, disk=None, min_free=0):
    """Runs argv; returns a dict of figures. Samples /proc every 0.1 s; kills the process group when the
    RSS of the process and its children passes max_rss bytes, or when the disk holding `disk` has less
    than min_free bytes free."""
    busy0 = cpu_busy_seconds()
    start = time.perf_counter()
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=err, stderr=subprocess.STDOUT,
                                start_new_session=True)
    io, peak_tree, killed, ticks = None, 0, None, 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        sample = proc_io(proc.pid)
        if sample:
            io = sample
        total = rss_bytes(proc.pid) + sum(rss_bytes(c) for c in descendants(proc.pid))
        peak_tree = max(peak_tree, total)
        if max_rss and total > max_rss and killed is None:
            killed = f"RSS {total / 2**30:.1f} GiB > {max_rss / 2**30:.1f} GiB: killed by the watchdog"
        ticks += 1
        if disk and min_free and ticks % 10 == 0 and killed is None:
            free = shutil.disk_usage(disk).free
            if free < min_free:
                killed = f"disk free {free / 2**30:.1f} GiB < {min_free / 2**30:.0f} GiB: killed by the watchdog"
        if killed and not killed.endswith("(sent)"):
            log(f"  {killed}")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            killed += " (sent)"
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    busy = cpu_busy_seconds() - busy0
    own = usage.ru_utime + usage.ru_stime
    code = os.waitstatus_to_exitcode(status)
    tail = Path(log_path).read_text(errors="replace").strip().splitlines()[-4:]
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "peak_rss_tree_mib": round(peak_tree / 2**20, 1),
        "cpu_seconds": round(own, 2),
        "others_cores": round(max(0.0, busy - own) / seconds, 2) if seconds > 0 else None,
        "wchar": io.get("wchar") if io else None,
        "write_bytes": io.get("write_bytes") if io else None,
        "exit": code,
        "killed": killed.removesuffix(" (sent)") if killed else None,
        "tail": tail,
    }


# --- dumps ----------------------------------------------------------------------------------------------

def make_dump(args, path, *extra):
    if path.is_file():
        return path
    argv = [sys.executable, str(ROOT / "scripts" / "make_dump.py"), "--n", str(args.n), "--seed", str(args.seed),
            "--out", str(path), "--photo-share", str(args.photo_share), *extra]
    if args.data_dir:
        argv += ["--data-dir", str(args.data_dir)]
    subprocess.run(argv, check=True)
    return path


def dumps(args):
    d = args.work / "dumps"
    d.mkdir(parents=True, exist_ok=True)
    base = make_dump(args, d / f"n{args.n}-s{args.seed}.jsonl")
    pct = f"{args.new_share * 100:g}"
    grown = make_dump(args, d / f"n{args.n}-s{args.seed}-plus{pct}pct.jsonl", "--base", str(base),
                      "--new-share", str(args.new_share))
    added = round(args.n * args.new_share)
    inserted = make_dump(args, d / f"n{args.n}-s{args.seed}-plus{pct}pct-inserted.jsonl", "--base", str(base),
                         "--new-share", str(args.new_share), "--insert", "--new-offset", str(added))
    return {"cold": base, "grown": grown, "noop": grown, "inserted": inserted}


# --- the chunker ----------------------------------------------------------------------------------------

def fresh_store(path, main_store):
    """An empty artifacts folder whose store holds only the trained chunker's runs and blobs (as
    scripts/bench.py). Returns how many runs were copied (0: the stages find it in the per-user store,
    or train it)."""
    shutil.rmtree(path, ignore_errors=True)
    (path / "store" / "runs").mkdir(parents=True)
    copied = 0
    for manifest in (main_store / "runs").glob("*.json"):
        try:
            run = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        if run.get("stage") != "chunker":
            continue
        try:
            for out in run["outputs"].values():
                digest = out["digest"]
                blob = Path("blobs") / digest[:2] / digest
                (path / "store" / blob).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(main_store / blob, path / "store" / blob)
        except (OSError, KeyError):
            continue
        shutil.copy2(manifest, path / "store" / "runs" / manifest.name)
        copied += 1
    return copied


# --- the benchmark --------------------------------------------------------------------------------------

def stage_argv(bin_dir, name, dump, artifacts, model):
    data = ["--dataset", str(dump), "--on-error", "fail"]
    common = ["--artifacts", str(artifacts)]
    if name == "features":
        return [str(bin_dir / name), *data, *TEXT, *common]
    if name == "predict":
        return [str(bin_dir / name), *data, "--model", str(model), *common]
    if name == "status":
        return [str(bin_dir / name), *data, *TEXT, *TRAIN, "--verify", *common]
    return [str(bin_dir / name), *data, *common]


def bench(args, label, bin_dir, dump_paths, meta, records):
    artifacts = args.work / f"artifacts-{label}-n{args.n}"
    copied = fresh_store(artifacts, args.main_store)
    log(f"[{label}] fresh store {artifacts} ({copied} chunker run(s) copied in)")
    logs = args.work / "logs" / f"{label}-n{args.n}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    env = dict(os.environ)
    if args.data_dir:
        env["UMGF_DATA_DIR"] = str(args.data_dir)
    env.setdefault("RUST_LOG", "info")
    for run in args.runs:
        dump = dump_paths[run]
        waited, busy = wait_for_quiet(args.quiet_below, args.quiet_wait)
        if waited > 1:
            log(f"[{label}] waited {waited:.0f} s for a quieter machine ({busy:.2f} cores busy)")
        stopped = None
        for name in args.stages:
            rec = {"bench": "scale", "label": label, "bin": str(bin_dir), "n": args.n, "run": run, "stage": name,
                   "dump": dump.name, "tweets": sum(1 for _ in open(dump, encoding="utf-8")), **meta}
            if stopped:
                rec.update(skipped=stopped)
                records.append(rec)
                emit(args, rec)
                continue
            if name == "predict" and args.wait_for:
                waited = wait_for_file(args.wait_for, args.wait_for_limit)
                if waited:
                    rec["waited_for_model_s"] = round(waited, 1)
            before = tree(artifacts)
            rec["load1_start"] = loadavg()
            argv = stage_argv(bin_dir, name, dump, artifacts, args.model)
            figures = measure(argv, ROOT, env, logs / f"{run}-{name}.log", args.max_rss_gib * 2**30,
                              artifacts, args.min_free_gib * 2**30)
            after = tree(artifacts)
            delta = tree_delta(before, after)
            rec.update(figures)
            rec["files"], rec["bytes"] = delta["all"]
            rec["by_part"] = {k: {"files": f, "bytes": b} for k, (f, b) in delta.items() if k != "all" and (f or b)}
            rec["store_files"], rec["store_bytes"] = after["all"]
            records.append(rec)
            emit(args, rec)
            flag = "" if figures["exit"] == 0 else f"  EXIT {figures['exit']} {figures['killed'] or ''}"
            log(f"[{label}] n={args.n} {run:8} {name:8} {figures['seconds']:8.1f} s {figures['peak_rss_mib']:8.0f} MiB "
                f"{rec['files']:+7d} files {rec['bytes'] / 2**20:+9.1f} MiB  load {rec['load1_start']:.2f} "
                f"others {figures['others_cores']}{flag}")
            if figures["exit"] != 0:
                stopped = f"{name} failed in this run (exit {figures['exit']})"
                log(f"  log: {logs / f'{run}-{name}.log'}: " + " | ".join(figures["tail"]))
        write_markdown(args, records)
    if not args.keep_artifacts:
        shutil.rmtree(artifacts, ignore_errors=True)


def emit(args, rec):
    with open(args.jsonl, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")


# --- the report -----------------------------------------------------------------------------------------

def fmt_s(rec):
    if rec is None:
        return ""
    if rec.get("skipped"):
        return "skipped"
    if rec.get("killed"):
        return f"killed ({rec['seconds']:.0f} s)"
    if rec.get("exit"):
        return f"failed ({rec['seconds']:.1f} s)"
    return f"{rec['seconds']:.2f}" if rec["seconds"] < 10 else f"{rec['seconds']:.1f}"


def fmt_mib(value):
    return "" if value is None else f"{value:.0f}"


def fmt_bytes(value):
    if value is None:
        return ""
    if abs(value) >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    if abs(value) >= 2**20:
        return f"{value / 2**20:.1f} MiB"
    if abs(value) >= 2**10:
        return f"{value / 2**10:.0f} KiB"
    return f"{value} B"


def ok(rec):
    return rec is not None and not rec.get("skipped") and not rec.get("exit")


def pct(part, whole):
    if not ok(part) or not ok(whole) or whole["seconds"] <= 0:
        return ""
    return f"{100 * part['seconds'] / whole['seconds']:.1f}%"


def table(recs, runs):
    """The Markdown table of one binary set: {(run, stage): rec}."""
    get = lambda run, stage: recs.get((run, stage))
    extra = [r for r in ("inserted",) if r in runs]
    head = ["stage", "cold s", "+1% s", "+1% / cold", "no-op s"] + [f"{r} s" for r in extra]
    head += [f"RSS MiB {r}" for r in ["cold", "+1%", "no-op"] + extra]
    head += [f"files {r}" for r in ["cold", "+1%", "no-op"] + extra]
    head += [f"bytes {r}" for r in ["cold", "+1%", "no-op"] + extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = ["cold", "grown", "noop"] + extra
    stages = []
    for (_, stage) in recs:
        if stage not in stages:
            stages.append(stage)
    stages.sort(key=STAGES.index)
    totals = {r: 0.0 for r in order}
    for stage in stages:
        row = [stage, fmt_s(get("cold", stage)), fmt_s(get("grown", stage)), pct(get("grown", stage), get("cold", stage)),
               fmt_s(get("noop", stage))] + [fmt_s(get(r, stage)) for r in extra]
        row += [fmt_mib(get(r, stage).get("peak_rss_mib")) if ok(get(r, stage)) else "" for r in order]
        row += [str(get(r, stage)["files"]) if ok(get(r, stage)) else "" for r in order]
        row += [fmt_bytes(get(r, stage)["bytes"]) if ok(get(r, stage)) else "" for r in order]
        lines.append("| " + " | ".join(row) + " |")
        if stage != "status":
            for r in order:
                if ok(get(r, stage)):
                    totals[r] += get(r, stage)["seconds"]
    if totals["cold"]:
        share = f"{100 * totals['grown'] / totals['cold']:.1f}%" if totals["grown"] else ""
        row = ["**all but status**", f"{totals['cold']:.1f}", f"{totals['grown']:.1f}", share, f"{totals['noop']:.1f}"]
        row += [f"{totals[r]:.1f}" for r in extra]
        row += [""] * (len(head) - len(row))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def contention(recs):
    loads = [r["load1_start"] for r in recs.values() if ok(r)]
    others = [r["others_cores"] for r in recs.values() if ok(r) and r.get("others_cores") is not None]
    if not loads:
        return ""
    return (f"load average (1 min) at stage start {min(loads):.2f}-{max(loads):.2f}; other processes' CPU while a "
            f"stage ran: mean {sum(others) / len(others):.2f} cores, max {max(others):.2f}")


def write_markdown(args, records):
    by_label = {}
    for rec in records:
        by_label.setdefault(rec["label"], {})[(rec["run"], rec["stage"])] = rec
    first = records[0]
    m = first["machine"]
    out = [f"# Scale benchmark, N = {args.n:,} tweets", "",
           f"{first['date']}, commit {first['commit']}; {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB. "
           f"Dumps from scripts/make_dump.py (seed {args.seed}, {args.photo_share:.0%} photo tweets); +1% = "
           f"{round(args.n * args.new_share)} new tweets appended; no-op = the +1% dump again"
           + ("; inserted = 1% other new tweets at random positions, after the no-op" if "inserted" in args.runs else "")
           + ". Seconds are wall time of the stage's process (its upstream resolved inside, as under make); "
             "RSS is its peak; files and bytes are what the artifacts folder gained.", ""]
    for label, recs in by_label.items():
        bin_dir = next(iter(recs.values()))["bin"]
        bin_commit = next(iter(recs.values())).get("bin_commit", "")
        out += [f"## {label} (`{bin_dir}`{', commit ' + bin_commit if bin_commit else ''})", ""]
        out += table(recs, args.runs)
        out += ["", contention(recs), ""]
    if len(by_label) == 2:
        (la, a), (lb, b) = by_label.items()
        out += [f"## {la} against {lb}", "",
                f"| stage | cold s {la} | cold s {lb} | +1% s {la} | +1% s {lb} | no-op s {la} | no-op s {lb} | "
                f"peak RSS MiB {la} | peak RSS MiB {lb} | files cold+1% {la} | files cold+1% {lb} |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        stages = sorted({s for (_, s) in list(a) + list(b)}, key=STAGES.index)
        for stage in stages:
            def peak(recs):
                vals = [recs[(r, stage)]["peak_rss_mib"] for r in args.runs if ok(recs.get((r, stage)))]
                return fmt_mib(max(vals)) if vals else ""

            def files(recs):
                vals = [recs[(r, stage)]["files"] for r in ("cold", "grown") if ok(recs.get((r, stage)))]
                return str(sum(vals)) if vals else ""
            out.append(f"| {stage} | {fmt_s(a.get(('cold', stage)))} | {fmt_s(b.get(('cold', stage)))} | "
                       f"{fmt_s(a.get(('grown', stage)))} | {fmt_s(b.get(('grown', stage)))} | "
                       f"{fmt_s(a.get(('noop', stage)))} | {fmt_s(b.get(('noop', stage)))} | "
                       f"{peak(a)} | {peak(b)} | {files(a)} | {files(b)} |")
        out.append("")
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text("\n".join(out), encoding="utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="tweets in the dump")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", type=Path, default=DEFAULT_BIN, help="the stage binaries (after)")
    ap.add_argument("--label", default="after", help="the name of --bin's column")
    ap.add_argument("--before-bin", type=Path, help="another set of binaries, run first (before)")
    ap.add_argument("--model", type=Path, default=ROOT / "artifacts" / "twitter2017" / "model",
                    help="predict's model folder (make train ENCODER=minilm)")
    ap.add_argument("--artifacts", type=Path, default=ROOT / "artifacts",
                    help="the main artifacts folder, whose trained chunker each fresh store gets")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "umgf-bench-scale",
                    help="dumps, fresh artifacts folders and logs (disposable)")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--new-share", type=float, default=0.01)
    ap.add_argument("--photo-share", type=float, default=0.02)
    ap.add_argument("--runs", default="cold,grown,noop", help=f"comma-separated, of {','.join(RUNS)}")
    ap.add_argument("--inserted", action="store_true", help="also the inserted run")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in order")
    ap.add_argument("--max-rss-gib", type=float, default=12.0, help="the watchdog's limit (0: none)")
    ap.add_argument("--min-free-gib", type=float, default=10.0,
                    help="the watchdog kills a stage when the disk has less free (0: no limit)")
    ap.add_argument("--quiet-below", type=float, default=0.0,
                    help="before each run, wait until other processes use under this many cores (0: do not wait)")
    ap.add_argument("--quiet-wait", type=float, default=900, help="the longest such wait, seconds")
    ap.add_argument("--wait-for", type=Path, help="before each predict, wait until this file exists "
                    "(a model still training: --model's config.json)")
    ap.add_argument("--wait-for-limit", type=float, default=7200, help="the longest such wait, seconds")
    ap.add_argument("--keep-artifacts", action="store_true")
    ap.add_argument("--out", type=Path, required=True, help="writes <out>.md and appends to <out>.jsonl")
    args = ap.parse_args()

    args.runs = [r for r in args.runs.split(",") if r] + (["inserted"] if args.inserted else [])
    args.stages = [s for s in args.stages.split(",") if s]
    for r in args.runs:
        if r not in RUNS:
            sys.exit(f"bench_scale: unknown run {r} (of {RUNS})")
    for s in args.stages:
        if s not in STAGES:
            sys.exit(f"bench_scale: unknown stage {s} (of {STAGES})")
    args.work = args.work.resolve()
    args.model = args.model.resolve()
    args.main_store = args.artifacts.resolve() / "store"
    if args.data_dir:
        args.data_dir = args.data_dir.resolve()
    out = args.out.resolve()
    args.md, args.jsonl = out.with_name(out.name + ".md"), out.with_name(out.name + ".jsonl")
    if "predict" in args.stages and args.wait_for:
        log(f"bench_scale: predict will wait for {args.wait_for}")
    elif "predict" in args.stages and not (args.model / "config.json").exists():
        sys.exit(f"bench_scale: no model at {args.model} (make train ENCODER=minilm, or --model)")
    if "predict" in args.stages and not args.wait_for and "minilm" not in (args.model / "config.json").read_text().lower():
        log(f"bench_scale: warning: {args.model} is not a MiniLM model: predict encodes with its encoder "
            "(make train ENCODER=minilm, then SCALE_MODEL=artifacts/twitter2017/model)")

    meta = {"machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "commit": git_commit(), "model": str(args.model)}
    dump_paths = dumps(args)
    records = []
    sets = ([("before", args.before_bin.resolve())] if args.before_bin else []) + [(args.label, args.bin.resolve())]
    for label, bin_dir in sets:
        commit_file = bin_dir / "COMMIT"
        bin_meta = dict(meta, bin_commit=commit_file.read_text().strip() if commit_file.is_file() else meta["commit"])
        bench(args, label, bin_dir, dump_paths, bin_meta, records)
    log(f"bench_scale: {args.md}, {args.jsonl}")


if __name__ == "__main__":
    main()
