#!/usr/bin/env python3
"""Runs inside the two-NUMA-node guest (tools/numa-vm/run.sh boots it). Checks, against the
kernel's own view, that hmst's NUMA placement does what each strategy says:

  - `hmst system-info` sees 2 nodes and may make policy calls;
  - for each strategy (distribute, isolate, numactl; in place and copied to bound memory), the
    weight pages of a loaded checkpoint sit on the nodes the policy names: hmst's own report
    (move_pages) and /proc/PID/numa_maps must agree with the expectation;
  - hmst's worker threads (named hmst-wN) are pinned per node: /proc/PID/task/*/status;
  - `mpirun -np 2 hmst train ... --numa-rank` trains, when the tool has that flag.

Prints one line per check, `CHECK PASS|FAIL|SKIP|INFO name: detail`, then a summary, and writes
/share/out/result.json. The share (/share) holds hmst, the checkpoint and this script."""
import json, os, re, shutil, subprocess, sys, time

SHARE = os.environ.get("NUMA_VM_SHARE", "/share")
HMST = os.path.join(SHARE, "hmst")
CKPT = "/var/tmp/ckpt"          # on the guest's ext4 disk: page-cache pages, not 9p's
MPI_TIMEOUT = int(os.environ.get("NUMA_VM_MPI_TIMEOUT", "1500"))  # s for the mpirun check under emulation
THREADS = "4"                   # 3 workers + the caller: worker i -> node i % 2 under distribute
results = []


def report(status, name, detail=""):
    results.append({"status": status, "name": name, "detail": detail})
    print(f"CHECK {status} {name}: {detail}", flush=True)


def sh(cmd, timeout=600):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def cpulist(text):
    out = []
    for part in text.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def drop_caches():
    subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True)


def load_and_inspect(numa, launcher="", copy=False, warm_on=None, touch=False):
    """Starts `hmst placement-report --hold` under launcher, reads its JSON, then reads the
    process's numa_maps and its worker threads' CPU masks while the model is still loaded."""
    drop_caches()
    if warm_on is not None:  # read the file on one node first: its page-cache pages land there
        sh(f"taskset -c {warm_on} cat {CKPT}/model.safetensors > /dev/null")
    cmd = f"{launcher} {HMST} placement-report {CKPT} --numa {numa} --threads {THREADS} --hold" + (" --copy" if copy else "") + (" --touch" if touch else "")
    p = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    try:
        rep = json.loads(line)
    except json.JSONDecodeError:
        p.stdin.close()
        err = p.stderr.read()
        p.wait(timeout=60)
        raise RuntimeError(f"{cmd}: no JSON (exit {p.returncode}): {line!r} {err.strip()[:400]}")
    pid = rep["pid"]
    begin, end = int(rep["weights_begin"], 16), int(rep["weights_end"], 16)
    maps = []
    with open(f"/proc/{pid}/numa_maps") as f:
        for l in f:
            fields = l.split()
            start = int(fields[0], 16)
            counts = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"\bN(\d+)=(\d+)", l)}
            maps.append((start, fields[1], counts, l.strip()))
    # the mapping holding the weights: the last one starting at or before their first byte
    vma = max((m for m in maps if m[0] <= begin), key=lambda m: m[0], default=None)
    workers = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            status = open(f"/proc/{pid}/task/{tid}/status").read()
        except OSError:
            continue
        if comm.startswith("hmst-w"):
            allowed = re.search(r"Cpus_allowed_list:\s*(\S+)", status).group(1)
            workers[int(comm[6:])] = cpulist(allowed)
    p.stdin.close()
    p.wait(timeout=120)
    return rep, vma, [workers[k] for k in sorted(workers)], end - begin


def fraction(by_node, node):
    total = sum(by_node.values())
    return by_node.get(node, 0) / total if total else 0.0


def check_case(name, numa, expect_nodes, expect_policy, expect_workers, launcher="", copy=False, warm_on=None, strict=True,
               touch=False):
    """expect_nodes: {node: (min share, max share)} of resident weight pages;
    expect_policy: the numa_maps policy prefix of the weights' mapping (None: don't check);
    expect_workers: list of CPU lists per worker (None: don't check)."""
    try:
        rep, vma, proc_workers, nbytes = load_and_inspect(numa, launcher, copy, warm_on, touch)
    except Exception as e:  # a crash or hang is a failure of this case, not of the whole check
        report("FAIL", name, str(e))
        return
    tot = rep["total"]
    by_node = {int(k): v for k, v in tot["by_node"].items()}
    problems = []
    if rep["applied"] != rep["requested"] and numa != "disabled":
        problems.append(f"applied {rep['applied']} (warnings: {rep['warnings']})")
    if copy and not rep["copied"]:
        problems.append("not copied")
    if tot["not_present"] or tot["unknown"]:
        problems.append(f"{tot['not_present']} pages not present, {tot['unknown']} unknown")
    for node, (lo, hi) in expect_nodes.items():
        f = fraction(by_node, node)
        if not lo <= f <= hi:
            problems.append(f"node {node} holds {f:.0%} of pages, expected {lo:.0%}..{hi:.0%}")
    vma_line = vma[3] if vma else "(no mapping found)"
    rep_begin = int(rep["weights_begin"], 16)
    vma_nodes = " ".join(w for w in vma_line.split() if re.match(r"N\d+=", w))
    if vma is None:
        problems.append("weights' mapping not in numa_maps")
    else:
        if expect_policy and not vma[1].startswith(expect_policy):
            problems.append(f"numa_maps policy {vma[1]}, expected {expect_policy}")
        # numa_maps counts the whole mapping (for the file map: also the safetensors header
        # before the weights); it must agree with move_pages up to those pages
        slack = 2 + (rep_begin - vma[0]) // 4096
        for node in set(by_node) | set(vma[2]):
            if abs(vma[2].get(node, 0) - by_node.get(node, 0)) > slack:
                problems.append(f"numa_maps N{node}={vma[2].get(node, 0)} but move_pages says {by_node.get(node, 0)}")
    if rep["workers"] != proc_workers:
        problems.append(f"report's workers {rep['workers']} != /proc's {proc_workers}")
    if expect_workers is not None and proc_workers != expect_workers:
        problems.append(f"workers' CPUs {proc_workers}, expected {expect_workers}")
    detail = (f"{rep['summary']}; pages by node {dict(sorted(by_node.items()))} of {tot['pages']} ({nbytes >> 10} KiB), "
              f"policy {rep.get('policy', {}).get('mode')}{rep.get('policy', {}).get('nodes')}, workers {proc_workers}, "
              f"caller {rep['caller_cpus']}; numa_maps: {' '.join(vma_line.split()[1:3])} "
              f"{vma_nodes}")
    if problems:
        report("FAIL" if strict else "INFO", name, "; ".join(problems) + " | " + detail)
    else:
        report("PASS", name, detail)


def main():
    os.makedirs(os.path.join(SHARE, "out"), exist_ok=True)
    print("== guest:", sh("uname -srm")[1].strip(), "|", sh("nproc")[1].strip(), "CPUs", flush=True)
    print(sh("numactl --hardware")[1], flush=True)
    rc, out, err = sh(f"{HMST} system-info")
    print(out + err, flush=True)
    m = re.search(r"numa:\s+available, (\d+) node\(s\), policy calls (\w+)", out)
    if m and m.group(1) == "2" and m.group(2) == "permitted":
        report("PASS", "system-info sees 2 nodes", m.group(0))
    else:
        report("FAIL", "system-info sees 2 nodes", out.strip().splitlines()[-3:] if out else err)
        return finish()

    shutil.rmtree(CKPT, ignore_errors=True)
    shutil.copytree(os.path.join(SHARE, "ckpt"), CKPT)
    if os.path.exists(os.path.join(SHARE, "only-mpi")):  # run.sh with NUMA_VM_ONLY=mpi
        mpi_check()
        return finish()
    node_cpus = json.loads(sh(f"{HMST} placement-report {CKPT} --threads 1")[1])["node_cpus"]
    print("node cpus:", node_cpus, flush=True)
    n0, n1 = node_cpus
    spread = [node_cpus[i % 2] for i in range(int(THREADS) - 1)]
    on0, on1 = f"taskset -c {n0[0]}", f"numactl --cpunodebind=1"
    half = {0: (0.40, 0.60), 1: (0.40, 0.60)}
    all0, all1 = {0: (1.0, 1.0)}, {1: (1.0, 1.0)}

    check_case("distribute: weight pages interleaved over both nodes", "distribute", half, "interleave:0-1", spread, launcher=on0)
    check_case("distribute --copy: bound copy interleaved", "distribute", half, "interleave:0-1", spread, launcher=on0, copy=True)
    check_case("isolate on node 0: pages and workers on node 0", "isolate", all0, "bind:0", [n0] * len(spread), launcher=on0)
    check_case("isolate on node 1: pages and workers on node 1", "isolate", all1, "bind:1", [n1] * len(spread), launcher=on1)
    check_case("isolate --copy on node 1", "isolate", all1, "bind:1", [n1] * len(spread), launcher=on1, copy=True)
    check_case("numactl --interleave=0,1: process policy interleaves", "numactl", half, None, [n0 + n1] * len(spread),
               launcher="numactl --interleave=0,1", touch=True)
    check_case("numactl --membind=1 --cpunodebind=1: all on node 1", "numactl", all1, None, [n1] * len(spread),
               launcher="numactl --membind=1 --cpunodebind=1", touch=True)
    # the file already in node 0's page cache (read there first): placement must move its pages
    check_case("isolate on node 1, file cached on node 0: pages moved to node 1", "isolate", all1, "bind:1",
               [n1] * len(spread), launcher=on1, warm_on=n0[0])
    check_case("distribute, file cached on node 0: half moved to node 1", "distribute", half, "interleave:0-1",
               spread, launcher=on0, warm_on=n0[0])
    check_case("isolate --copy on node 1, file cached on node 0", "isolate", all1, "bind:1", [n1] * len(spread),
               launcher=on1, copy=True, warm_on=n0[0])

    shared_check(n0, n1)
    mpi_check()
    return finish()


def shared_check(n0, n1):
    """Pages another process also maps cannot be moved: a second load must say so, not fail."""
    name = "isolate on node 1 while another process maps the file on node 0: warns, stays"
    drop_caches()
    holder = subprocess.Popen(f"taskset -c {n0[0]} {HMST} placement-report {CKPT} --numa isolate --threads 1 --hold",
                              shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(holder.stdout.readline())
        rc, out, err = sh(f"numactl --cpunodebind=1 {HMST} placement-report {CKPT} --numa isolate --threads 1")
        rep = json.loads(out)
        by_node = {int(k): v for k, v in rep["total"]["by_node"].items()}
        warned = [w for w in rep["warnings"] if "could not be moved" in w]
        ok = first["total"]["by_node"] == {"0": first["total"]["pages"]} and rep["applied"] == "isolate" \
            and warned and fraction(by_node, 0) > 0.9
        report("PASS" if ok else "FAIL", name, f"{rep['summary']}; pages by node {by_node}; warnings {rep['warnings']}")
    except Exception as e:
        report("FAIL", name, str(e))
    finally:
        holder.stdin.close()
        holder.wait(timeout=120)


def rank_sample(pid):
    """One look at a training rank: its MPI rank, the CPUs its threads may use, and its
    resident anonymous pages (heap: weights, gradients, optimizer state) by node."""
    env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    rank = next((int(e.split(b"=")[1]) for e in env if e.startswith(b"OMPI_COMM_WORLD_RANK=")), None)
    cpus = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        # hmst's threads: the main one and the workers (not OpenMPI's own helpers)
        if tid != str(pid) and not open(f"/proc/{pid}/task/{tid}/comm").read().startswith("hmst-w"):
            continue
        st = open(f"/proc/{pid}/task/{tid}/status").read()
        cpus |= set(cpulist(re.search(r"Cpus_allowed_list:\s*(\S+)", st).group(1)))
    anon = {}
    for l in open(f"/proc/{pid}/numa_maps"):
        if " anon=" in l or " heap" in l:
            for m in re.finditer(r"\bN(\d+)=(\d+)", l):
                anon[int(m.group(1))] = anon.get(int(m.group(1)), 0) + int(m.group(2))
    return rank, sorted(cpus), anon


def loopback_up():
    """The guest boots without networking; OpenMPI's launcher (PMIx) needs at least lo."""
    import fcntl, socket, struct
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh", b"lo", 0)))[1]  # SIOCGIFFLAGS
    fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))  # SIOCSIFFLAGS |= IFF_UP (gets 127.0.0.1)
    with open("/etc/hosts", "a") as f:
        f.write("127.0.0.1 localhost\n127.0.1.1 numa-vm\n")


def mpi_check():
    name = "mpirun -np 2 hmst train --numa-rank"
    tool = os.path.join(SHARE, "hmst-mpi") if os.path.exists(os.path.join(SHARE, "hmst-mpi")) else HMST
    rc, out, err = sh(f"{tool} train --help")
    if "--numa-rank" not in out + err:
        report("SKIP", name, "this hmst has no --numa-rank flag (MPI training is on branch mpi); "
               "rerun once it is merged, or pass HMST_MPI_BIN to run.sh")
        return
    try:
        loopback_up()
    except OSError as e:
        print("could not bring lo up:", e, flush=True)
    # tokenized here: the data directory records its tokenizer's absolute path
    data = "/var/tmp/train-data"
    rc, out, err = sh(f"{HMST} tokenizer train --vocab-size 512 --no-progress --output /var/tmp/tokenizer.json "
                      f"/usr/share/common-licenses/GPL-3 && {HMST} preprocess --input /usr/share/common-licenses/GPL-3 "
                      f"--output {data} --tokenizer-path /var/tmp/tokenizer.json --no-progress")
    if rc != 0:
        report("FAIL", name, f"could not tokenize the training data: {(out + err).strip()[-300:]}")
        return
    node_cpus = json.loads(sh(f"{HMST} placement-report {CKPT} --threads 1")[1])["node_cpus"]
    cmd = (f"mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 {tool} train {data} --pretokenized "
           f"--model-size micro --seq-len 16 --batch-size 1 --steps-per-epoch 2 --threads 1 --no-progress --seed 3 --collective-timeout 1500 "
           f"--learning-rate 1e-3 --numa-rank --output-dir /var/tmp/mpi-train")
    print("mpi:", os.path.basename(tool), "|", cmd, flush=True)
    t0 = time.time()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    lines = []

    def relay():  # the ranks' output on the console as it comes: slow emulation wants a sign of life
        for l in p.stdout:
            lines.append(l.rstrip("\n"))
            print(f"  | [{time.time() - t0:5.0f} s] {lines[-1]}", flush=True)
    import threading
    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    samples, cpu_s, last_note = {}, {}, t0
    while p.poll() is None and time.time() - t0 < MPI_TIMEOUT:
        # sample each rank's placement while it trains; keep the last look at each
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.path.basename(os.readlink(f"/proc/{pid}/exe")) != os.path.basename(tool):
                    continue
                rank, cpus, anon = rank_sample(pid)
                if rank is not None and (rank not in samples or sum(anon.values()) >= sum(samples[rank][1].values())):
                    # the fullest heap seen: a rank tearing down at the end has freed its buffers
                    samples[rank] = (cpus, anon)
                    st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                    cpu_s[rank] = (st[0], (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK"))
            except (OSError, AttributeError, ValueError):
                continue
        if time.time() - last_note >= 60:  # progress while the ranks are silent: state, CPU seconds
            last_note = time.time()
            print(f"  . [{last_note - t0:5.0f} s] " + ", ".join(f"rank {r}: {st} {c:.0f} CPU s" for r, (st, c) in sorted(cpu_s.items())), flush=True)
        time.sleep(1)
    problems = []
    if p.poll() is None:
        problems.append(f"still running after {MPI_TIMEOUT} s: stopped")
        os.killpg(p.pid, 9)  # mpirun and the ranks it started
        p.wait()
    reader.join(timeout=10)
    out = "\n".join(lines)
    if p.returncode != 0:
        problems.append(f"mpirun exit {p.returncode}")
    for r in (0, 1):
        if f"rank {r}: --numa-rank: NUMA node {r} of 2" not in out:
            problems.append(f"rank {r} did not report binding to node {r}")
        if r not in samples:
            problems.append(f"rank {r} never sampled")
            continue
        cpus, anon = samples[r]
        if cpus != node_cpus[r]:
            problems.append(f"rank {r} threads may run on CPUs {cpus}, not node {r}'s {node_cpus[r]}")
        if fraction(anon, r) < 0.9:
            problems.append(f"rank {r} anonymous pages by node {anon}: under 90% on node {r}")
    detail = f"{time.time() - t0:.0f} s; ranks' fullest samples (CPUs, anon pages by node): " + \
        "; ".join(f"rank {r}: {samples[r][0]} {dict(sorted(samples[r][1].items()))}" for r in sorted(samples))
    report("FAIL" if problems else "PASS", name, "; ".join(problems + [detail]))


def finish():
    counts = {s: sum(r["status"] == s for r in results) for s in ("PASS", "FAIL", "SKIP", "INFO")}
    print("SUMMARY " + " ".join(f"{k.lower()}={v}" for k, v in counts.items()), flush=True)
    with open(os.path.join(SHARE, "out", "result.json.tmp"), "w") as f:
        json.dump({"results": results, "counts": counts}, f, indent=1)
    os.replace(os.path.join(SHARE, "out", "result.json.tmp"), os.path.join(SHARE, "out", "result.json"))
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
