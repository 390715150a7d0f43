"""Start a multi-node Ray cluster on this machine for development, and keep it up until Ctrl-C.

    python cluster/local_cluster.py --workers 2 --cpus-per-worker 2
    # in another terminal, the two lines it prints (address, token file):
    export RAY_ADDRESS=... RAY_AUTH_TOKEN_PATH=...
    crucible-ray sweep ratio ...           # RAY_ADDRESS: runs on this cluster

Like a real cluster: a head with no CPUs (it only coordinates), worker nodes that do the work, token
authentication on (a fresh token unless ``RAY_AUTH_TOKEN`` is set; written to a file only you can read,
never printed), the dashboard on 127.0.0.1 only.
Nodes can be added or killed by hand to try failure handling (see docs/cluster.md).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--workers", type=int, default=2, help="Worker nodes (default 2).")
    ap.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs each worker node advertises.")
    ap.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs each worker node advertises.")
    ap.add_argument("--dashboard", action="store_true", help="Start the dashboard (on 127.0.0.1).")
    args = ap.parse_args(argv)
    if args.workers < 1 or args.cpus_per_worker <= 0 or args.gpus_per_worker < 0:
        ap.error("--workers must be >= 1, --cpus-per-worker > 0 and --gpus-per-worker >= 0")

    os.environ["RAY_AUTH_MODE"] = "token"  # before Ray is imported: every node inherits it
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    token_file = Path(tempfile.mkdtemp(prefix="crucible-ray-cluster-")) / "auth_token"
    token_file.touch(mode=0o600)
    token_file.write_text(os.environ["RAY_AUTH_TOKEN"])
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": args.dashboard, "dashboard_host": "127.0.0.1"},
    )
    for _ in range(args.workers):
        cluster.add_node(num_cpus=args.cpus_per_worker, num_gpus=args.gpus_per_worker)
    cluster.wait_for_nodes()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sys.stdout.write(
        f"local Ray cluster: head + {args.workers} worker node(s) x {args.cpus_per_worker:g} CPU"
        f" / {args.gpus_per_worker:g} GPU\n"
        f"export RAY_ADDRESS={cluster.address}\n"
        f"export RAY_AUTH_TOKEN_PATH={token_file}\n"
        + (f"dashboard: http://{cluster.webui_url}\n" if args.dashboard and cluster.webui_url else "")
        + "ready; Ctrl-C stops it\n"
    )
    sys.stdout.flush()
    stop.wait()
    cluster.shutdown()
    token_file.unlink(missing_ok=True)
    token_file.parent.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
