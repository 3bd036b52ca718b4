#!/usr/bin/env python3
"""Whole-area inference of an s2cr run fanned out over a Dask cluster.

Each Dask task runs `s2cr infer --tiles N --tile I` for one tile of grid rows; when all are
done, `s2cr infer --tiles N --merge` assembles the image a single process would have written
(same values, same manifest). Every worker must see the project folder at the same path (a
shared file system) and have the s2cr binary.

    python3 dask_infer.py --project my-fire --run default --tiles 16                # a local cluster
    python3 dask_infer.py --project /shared/my-fire --tiles 64 --scheduler tcp://head:8786

Without --scheduler a LocalCluster of --workers processes (one thread each) runs on this
machine. Requirements: scripts/requirements-scale.txt (dask, distributed).
"""
import argparse
import subprocess
import sys


def run_tile(s2cr, project, run, tiles, tile, device, threads):
    """One tile, in its own process; returns its summary line, or raises with s2cr's error."""
    env = None
    if threads:
        import os
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [s2cr, "--project", project, "-q", "infer", "--run", run, "--device", device, "--tiles", str(tiles), "--tile", str(tile)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"tile {tile}: {' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", required=True, help="project folder, the same path on every worker")
    ap.add_argument("--run", default="default")
    ap.add_argument("--tiles", type=int, required=True, help="tiles of grid rows (more tiles than workers balances the load)")
    ap.add_argument("--scheduler", help="address of a running Dask scheduler (default: a LocalCluster here)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per tile (RAYON_NUM_THREADS; 0: s2cr's default)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--s2cr", default="s2cr", help="the s2cr binary on the workers")
    a = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    cluster = None
    if a.scheduler:
        client = Client(a.scheduler)
    else:
        cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(run_tile, a.s2cr, a.project, a.run, a.tiles, t, a.device, a.threads, pure=False) for t in range(a.tiles)]
        for line in client.gather(futures):
            print(line, flush=True)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    merge = subprocess.run([a.s2cr, "--project", a.project, "-q", "infer", "--run", a.run, "--device", a.device, "--tiles", str(a.tiles), "--merge"], capture_output=True, text=True)
    sys.stdout.write(merge.stdout)
    if merge.returncode != 0:
        sys.stderr.write(merge.stderr)
        return merge.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
