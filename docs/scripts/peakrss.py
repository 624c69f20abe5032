"""Peak memory of a command and its children (DataLoader workers): the largest sum of their PSS
(proportional set size: shared pages split between the processes that map them), sampled every
0.1 s, and the peak RSS of the main process (from /proc/PID/status VmHWM). Usage:
python peakrss.py OUT.json -- COMMAND..."""
import json, subprocess, sys, time
from pathlib import Path

out, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
t0 = time.time()
p = subprocess.Popen(cmd)

def tree(root):
    kids = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    todo, seen = [root], []
    while todo:
        x = todo.pop()
        seen.append(x)
        todo += kids.get(x, [])
    return seen

def pss(pid):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0

peak, hwm, nproc = 0, 0, 0
while p.poll() is None:
    pids = tree(p.pid)
    peak = max(peak, sum(pss(x) for x in pids))
    nproc = max(nproc, len(pids))
    try:
        for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = max(hwm, int(line.split()[1]) * 1024)
    except OSError:
        pass
    time.sleep(0.1)
rec = {"command": " ".join(cmd), "rc": p.returncode, "peak_pss_gb": round(peak / 2**30, 3),
       "main_hwm_gb": round(hwm / 2**30, 3), "processes": nproc, "seconds": round(time.time() - t0, 1)}
Path(out).write_text(json.dumps(rec) + "\n")
print(json.dumps(rec))
