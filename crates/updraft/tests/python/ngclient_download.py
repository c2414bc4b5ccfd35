"""python-tuf's ngclient downloads one target. argv: metadata_dir base_url target_dir target_path"""
import sys

from tuf.ngclient import Updater

metadata_dir, base_url, target_dir, target_path = sys.argv[1:5]
with open(f"{metadata_dir}/root.json", "rb") as f:
    trusted_root = f.read()
updater = Updater(
    metadata_dir=metadata_dir,
    bootstrap=trusted_root,
    metadata_base_url=f"{base_url}/metadata/",
    target_dir=target_dir,
    target_base_url=f"{base_url}/targets/",
)
updater.refresh()
info = updater.get_targetinfo(target_path)
if info is None:
    sys.exit(f"{target_path} not found")
print(updater.download_target(info))
