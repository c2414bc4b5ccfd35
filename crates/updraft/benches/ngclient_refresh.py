"""Times python-tuf ngclient refreshes. argv: root_file base_url runs
Prints: cold_median_ms unchanged_median_ms"""
import statistics
import sys
import tempfile
import time

from tuf.ngclient import Updater

root_file, base_url, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(root_file, "rb") as f:
    root = f.read()
cold, unchanged = [], []
for _ in range(runs):
    with tempfile.TemporaryDirectory() as md:
        t = time.perf_counter()
        Updater(metadata_dir=md, metadata_base_url=f"{base_url}/metadata/", bootstrap=root).refresh()
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        Updater(metadata_dir=md, metadata_base_url=f"{base_url}/metadata/", bootstrap=root).refresh()
        unchanged.append(time.perf_counter() - t)
print(f"{statistics.median(cold) * 1000:.2f} {statistics.median(unchanged) * 1000:.2f}")
