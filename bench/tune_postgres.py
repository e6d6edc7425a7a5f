"""One study from two ``detforge tune`` processes sharing a PostgreSQL storage (issue 11).

Command (from the repository root; needs the ``[tune]`` extra, i.e. Optuna and psycopg2, and
Debian's PostgreSQL server binaries under ``/usr/lib/postgresql/<version>/bin``):

    .venv/bin/python bench/tune_postgres.py --trials 4 --epochs 1 --imgsz 128

What it does:

1. Starts a private PostgreSQL cluster: ``initdb`` into a fresh temporary folder, ``pg_ctl
   start`` with TCP off and the Unix socket in that folder, on a port nothing else uses. Why not
   the image's Debian cluster (``pg_ctlcluster 15 main start``): that would change the machine's
   state (a system service on port 5432, its data in /var/lib/postgresql) and need its
   ``pg_hba.conf`` set for password-less access; a private cluster with ``trust`` on its own
   socket needs nothing from the system, is gone when the script ends, and cannot collide with a
   server someone else started. ``initdb`` refuses to run as root, so as root the server
   commands run as the ``postgres`` user (``su postgres -c``) in a folder that user owns.
2. Creates a database ``detforge`` and runs one study (random sampler, no pruner, so every trial
   trains its epochs) from two ``detforge tune`` processes with
   ``storage=postgresql+psycopg2://postgres@/detforge?host=<socket dir>&port=<port>``, on a
   generated demo dataset; the second process starts once the first has asked its first trial
   (as a second machine joining).
3. Checks, from the database and the two processes' progress lines, that the study has exactly
   ``--trials`` complete trials, that every trial was run by exactly one of the processes (its
   progress line in one output only, the worker pid recorded on it one of the two) and trained
   exactly ``--epochs`` epochs into its own run folder; prints a summary and writes
   ``bench/results/tune_postgres.json``. Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from detforge.data.demo import generate_demo_dataset  # noqa: E402
from detforge.utils.atomic import write_json_atomic  # noqa: E402


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        sys.exit("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_server_user(cmd: list[str]) -> list[str]:
    """``cmd`` as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return cmd
    return ["su", "postgres", "-c", shlex.join(cmd)]


class Cluster:
    """A throw-away PostgreSQL cluster in ``folder`` listening on its Unix socket only."""

    def __init__(self, folder: Path):
        self.bin, self.folder, self.port = pg_bin(), folder, free_port()
        self.data = folder / "data"

    def __enter__(self) -> Cluster:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")

        def run(cmd: list[str]) -> None:
            done = subprocess.run(as_server_user(cmd), capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{shlex.join(cmd)} failed:\n{done.stdout}{done.stderr}")

        run([str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres"])
        opts = f"-c listen_addresses='' -c unix_socket_directories={self.folder} -p {self.port}"
        run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts,
             "-l", str(self.folder / "server.log"), "-w", "start"])  # fmt: skip
        run([str(self.bin / "createdb"), "-h", str(self.folder), "-p", str(self.port),
             "-U", "postgres", "detforge"])  # fmt: skip
        return self

    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@/detforge?host={self.folder}&port={self.port}"

    def __exit__(self, *exc) -> None:
        subprocess.run(as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                                       "fast", "-w", "stop"]), capture_output=True)  # fmt: skip


def tune_cmd(args, data: Path, project: Path, url: str) -> list[str]:
    space = "optim.lr0: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}\n"
    (project.parent / "space.yaml").write_text(space)
    return [
        sys.executable, "-m", "detforge.cli", "tune", f"space={project.parent / 'space.yaml'}",
        "study=pg", f"storage={url}", f"trials={args.trials}", "sampler=random", "pruner=none",
        f"data={data}", f"imgsz={args.imgsz}", f"epochs={args.epochs}", "batch=8",
        "data.workers=0", f"project={project}", f"data.cache_dir={project.parent / 'cache'}",
        "train.progress=false", "eval.report=false",
    ]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "tune_postgres.json"))
    args = ap.parse_args()
    import optuna

    with tempfile.TemporaryDirectory(prefix="detforge-pg-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)  # the postgres user reaches its folder below
        (tmp / "pg").mkdir()
        data = generate_demo_dataset(tmp / "data", num_train=32, num_val=16, imgsz=args.imgsz)
        project = tmp / "runs"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_WAIT_POLICY": "PASSIVE"}
        with Cluster(tmp / "pg") as pg:
            cmd = tune_cmd(args, data, project, pg.url())
            t0 = time.perf_counter()
            logs = [open(tmp / f"worker{i}.out", "w+") for i in (0, 1)]
            first = subprocess.Popen(cmd, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
            while not (project / "tune" / "pg" / "trial_000").exists() and first.poll() is None:
                time.sleep(0.2)  # the second machine joins once the study runs a trial
            second = subprocess.Popen(cmd, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
            codes = [first.wait(), second.wait()]
            seconds = time.perf_counter() - t0
            outs = [(tmp / f"worker{i}.out").read_text() for i in (0, 1)]
            trials = optuna.load_study(study_name="pg", storage=pg.url()).get_trials()
        pids = [first.pid, second.pid]
        ran = [sorted(int(n) for n in re.findall(r"^trial (\d+) \(", o, re.M)) for o in outs]
        by_trial = []
        for t in trials:
            run_dir = project / "tune" / "pg" / f"trial_{t.number:03d}"
            rows = (run_dir / "results.csv").read_text().strip().splitlines()[1:]
            by_trial.append({
                "trial": t.number, "state": t.state.name, "fitness": t.value,
                "optim.lr0": t.params.get("optim.lr0"), "worker_pid": t.user_attrs["worker"]["pid"],
                "epochs_in_results_csv": len(rows),
                "printed_by": [i for i in (0, 1) if t.number in ran[i]],
            })  # fmt: skip
    checks = {
        "both processes exited 0": codes == [0, 0],
        f"exactly {args.trials} trials, all complete": len(trials) == args.trials
        and all(t["state"] == "COMPLETE" for t in by_trial),
        "every trial run by exactly one process": all(
            len(t["printed_by"]) == 1 and t["worker_pid"] == pids[t["printed_by"][0]]
            for t in by_trial
        ),
        f"every trial trained {args.epochs} epoch(s) once": all(
            t["epochs_in_results_csv"] == args.epochs for t in by_trial
        ),
        "both processes ran trials": all(ran),
        "distinct parameters": len({t["optim.lr0"] for t in by_trial}) == len(by_trial),
    }
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "postgres": str(pg_bin().parent.name), "optuna": optuna.__version__,
        "host": platform.node(), "cpus": os.cpu_count(), "wall_seconds": round(seconds, 1),
        "trials_per_process": [len(r) for r in ran], "trials": by_trial, "checks": checks,
        "settings": {"trials": args.trials, "epochs": args.epochs, "imgsz": args.imgsz,
                     "data": "demo 32 train / 16 val images", "sampler": "random",
                     "pruner": "none"},
    }  # fmt: skip
    write_json_atomic(args.out, result, indent=2)
    print(
        f"PostgreSQL {result['postgres']}, Optuna {optuna.__version__}: {len(trials)} trials "
        f"from 2 processes in {seconds:.1f} s (process 1 ran {ran[0]}, process 2 ran {ran[1]})"
    )
    for t in by_trial:
        print(
            f"  trial {t['trial']}: {t['state']}, lr0 {t['optim.lr0']:.4g}, fitness "
            f"{t['fitness']}, by process {[i + 1 for i in t['printed_by']]}"
        )
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAILED'}] {name}")
    print(f"wrote {args.out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
