#!/usr/bin/env python3
"""scikit-learn CPU reference benchmark for advlab (PCA, k-means, DBSCAN, Ward, t-SNE on MNIST).

Example:
    python3 benches/reference/sklearn_bench.py --data ../shared/data/mnist --threads 2 --out sklearn.json
"""
import argparse
import json
import os
import resource
import sys
import time

WORKLOADS = ["pca_60k", "kmeans_1_10", "dbscan_60k_scaled", "dbscan_60k_raw", "ward_10k", "average_10k", "complete_10k",
             "tsne_5k"]

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--data", default="../shared/data/mnist", help="dir with train-images-idx3-ubyte(.gz)")
p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads")
p.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated subset (dbscan_60k = both dbscan)")
p.add_argument("--out", help="write results as JSON")
args = p.parse_args()
only = [w for name in args.only.split(",") if name
        for w in (["dbscan_60k_scaled", "dbscan_60k_raw"] if name == "dbscan_60k" else [name])]
if bad := [w for w in only if w not in WORKLOADS]:
    sys.exit(f"unknown workload(s) {bad}; choose from {WORKLOADS}")

# Thread counts must be in the environment before numpy / BLAS are loaded.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
from mnist_idx import read_idx  # noqa: E402  (imports numpy: after the thread settings)
import sklearn  # noqa: E402
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=args.threads)
except ImportError:
    pass


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def dbscan_info(labels):
    return {"clusters": int(labels.max() + 1), "noise": int((labels == -1).sum())}


x = read_idx(args.data, "train-images-idx3-ubyte").reshape(60000, 784).astype(np.float64) / 255.0
results = {}


def record(name, seconds, n, **info):
    results[name] = {"seconds": seconds, "peak_rss_mb": round(peak_rss_mb(), 1), "n": n, **info}


# PCA is needed (untimed if not selected) by every 2-D workload.
solver = "covariance_eigh" if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 5) else "full"
if set(only) - {"tsne_5k"}:
    pca = PCA(n_components=2, svd_solver=solver)
    z, s = timed(lambda: pca.fit_transform(x))
    if "pca_60k" in only:
        record("pca_60k", s, len(x), solver=solver,
               explained_variance_ratio=[round(float(v), 6) for v in pca.explained_variance_ratio_])

if "kmeans_1_10" in only:
    def kmeans_all():
        return [float(KMeans(n_clusters=k, n_init=10, random_state=1).fit(z).inertia_) for k in range(1, 11)]
    inertia, s = timed(kmeans_all)
    record("kmeans_1_10", s, len(z), inertia=[round(v, 3) for v in inertia])

if "dbscan_60k_scaled" in only:
    zs = MinMaxScaler().fit_transform(z)
    db, s = timed(lambda: DBSCAN(eps=0.1, min_samples=50).fit(zs))
    record("dbscan_60k_scaled", s, len(zs), **dbscan_info(db.labels_))

if "dbscan_60k_raw" in only:
    db, s = timed(lambda: DBSCAN(eps=0.1, min_samples=50).fit(z))
    record("dbscan_60k_raw", s, len(z), **dbscan_info(db.labels_))

if "ward_10k" in only:
    ward, s = timed(lambda: AgglomerativeClustering(n_clusters=8, linkage="ward").fit(z[:10000]))
    record("ward_10k", s, 10000, cluster_sizes=sorted(np.bincount(ward.labels_).tolist(), reverse=True))

for linkage in ("average", "complete"):
    # scikit-learn holds the condensed n×n distance matrix for these: 10k points only (400 MB)
    if f"{linkage}_10k" in only:
        agg, s = timed(lambda: AgglomerativeClustering(n_clusters=8, linkage=linkage).fit(z[:10000]))
        record(f"{linkage}_10k", s, 10000, cluster_sizes=sorted(np.bincount(agg.labels_).tolist(), reverse=True))

if "tsne_5k" in only:
    iters = "max_iter" if "max_iter" in TSNE().get_params() else "n_iter"
    tsne = TSNE(n_components=2, perplexity=30, random_state=1, init="pca", **{iters: 1000})
    _, s = timed(lambda: tsne.fit_transform(x[:5000]))
    record("tsne_5k", s, 5000, kl_divergence=round(float(tsne.kl_divergence_), 4))

print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, threads {args.threads}")
print(f"{'workload':<20}{'seconds':>10}{'peak_rss_mb':>13}{'n':>8}  info")
for name, r in results.items():
    info = {k: v for k, v in r.items() if k not in ("seconds", "peak_rss_mb", "n")}
    print(f"{name:<20}{r['seconds']:>10.3f}{r['peak_rss_mb']:>13.1f}{r['n']:>8}  {json.dumps(info)}")

if args.out:
    with open(args.out, "w") as f:
        json.dump({"sklearn_version": sklearn.__version__, "threads": args.threads, "results": results}, f, indent=1)
