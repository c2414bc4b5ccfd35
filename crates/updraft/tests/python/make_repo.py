"""Writes a consistent-snapshot TUF repository with python-tuf's Metadata API: ed25519 root,
ECDSA targets, RSA-PSS snapshot, ed25519 timestamp, one target, and a root rotation (v2).
argv: output_dir"""
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

out = sys.argv[1]
os.makedirs(f"{out}/metadata", exist_ok=True)
os.makedirs(f"{out}/targets/content", exist_ok=True)
expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)

signers = {
    "root": CryptoSigner.generate_ed25519(),
    "targets": CryptoSigner.generate_ecdsa(),
    "snapshot": CryptoSigner.generate_rsa(),
    "timestamp": CryptoSigner.generate_ed25519(),
}
root = Root(expires=expires, consistent_snapshot=True)
for role, signer in signers.items():
    root.add_key(signer.public_key, role)
root_md = Metadata(root)
root_md.sign(signers["root"])
root_md.to_file(f"{out}/metadata/1.root.json")

# Root v2: the root key is rotated; signed by the old and the new key.
new_root_signer = CryptoSigner.generate_ecdsa()
root.revoke_key(signers["root"].public_key.keyid, "root")
root.add_key(new_root_signer.public_key, "root")
root.version = 2
root_md = Metadata(root)
root_md.sign(signers["root"], append=True)
root_md.sign(new_root_signer, append=True)
root_md.to_file(f"{out}/metadata/2.root.json")

data = b"hello from python-tuf\n"
target = TargetFile.from_data("content/hello.txt", data, ["sha256"])
with open(f"{out}/targets/content/{target.hashes['sha256']}.hello.txt", "wb") as f:
    f.write(data)
targets = Targets(expires=expires)
targets.targets[target.path] = target
targets_md = Metadata(targets)
targets_md.sign(signers["targets"])
targets_md.to_file(f"{out}/metadata/1.targets.json")

snapshot = Snapshot(expires=expires)
snapshot.meta["targets.json"] = MetaFile(version=1)
snapshot_md = Metadata(snapshot)
snapshot_md.sign(signers["snapshot"])
snapshot_md.to_file(f"{out}/metadata/1.snapshot.json")

timestamp = Timestamp(expires=expires)
timestamp.snapshot_meta = MetaFile(version=1)
timestamp_md = Metadata(timestamp)
timestamp_md.sign(signers["timestamp"])
timestamp_md.to_file(f"{out}/metadata/timestamp.json")
print("ok")
