#!/bin/sh
# Fetches one backup of a store for a restore, run by the restore Job's `fetch` container in the restic image:
# restores snapshot SNAPSHOT of the store's repository into RESTORE_DIR (an emptyDir), verifying every blob as it
# reads it, then checks that it is a backup of this engine and that the dump is the one its manifest describes.
# The Job's next containers load the dump and replace the files from RESTORE_DIR/data.
#
# The Secret `store-backup` gives RESTIC_REPOSITORY, RESTIC_PASSWORD, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY;
# the Job gives SNAPSHOT, RESTORE_DIR, STORE_ENGINE, S3_BUCKET_LOOKUP, S3_REGION and RESTIC_CACHE_DIR.
set -eu

restic -o "s3.bucket-lookup=$S3_BUCKET_LOOKUP" -o "s3.region=$S3_REGION" \
    restore "$SNAPSHOT" --target "$RESTORE_DIR/fetched" --verify

# The snapshot holds the directory the backup was made from (/backup in a pod): wherever that was, its content
# becomes RESTORE_DIR/data.
manifest=$(find "$RESTORE_DIR/fetched" -maxdepth 8 -name manifest.json | head -n 1)
if [ -z "$manifest" ]; then
    echo "snapshot $SNAPSHOT holds no manifest.json: it is not a store backup" >&2
    exit 1
fi
mv "$(dirname "$manifest")" "$RESTORE_DIR/data"
data="$RESTORE_DIR/data"

engine=$(sed -n 's/^ *"engine": "\([a-z]*\)".*/\1/p' "$data/manifest.json" | head -n 1)
if [ "$engine" != "$STORE_ENGINE" ]; then
    echo "snapshot $SNAPSHOT is a backup of a ${engine:-unknown} store, not of a $STORE_ENGINE store" >&2
    exit 1
fi
expected=$(sed -n 's/.*"sha256": "\([0-9a-f]*\)".*/\1/p' "$data/manifest.json" | head -n 1)
actual=$(sha256sum "$data/database.sql" | cut -d' ' -f1)
if [ "$expected" != "$actual" ]; then
    echo "the database dump of snapshot $SNAPSHOT does not match its manifest (sha256 $actual, expected $expected)" >&2
    exit 1
fi
mkdir -p "$data/files"
echo "fetched snapshot $SNAPSHOT: $(wc -c <"$data/database.sql" | tr -d ' ') bytes of dump, $(du -sk "$data/files" | cut -f1) KiB of files"
