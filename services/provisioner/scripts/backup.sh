#!/bin/sh
# One backup of a store, run by its backup Jobs (scheduled and on demand) in the restic image, after the Job's
# `dump` container (the store's own database image) has written database.sql into BACKUP_DIR (/backup in the pod).
# The store's files are mounted read-only at $BACKUP_DIR/files. This writes the manifest, stores all three as one
# snapshot of the store's repository (creating the repository on its first backup), and then applies the
# retention policy. TMPDIR (/tmp in the pod, an emptyDir) holds restic's output.
#
# The Secret `store-backup` gives RESTIC_REPOSITORY, RESTIC_PASSWORD, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY;
# the Job gives BACKUP_DIR, S3_BUCKET_LOOKUP (path or dns), S3_REGION, STORE_ID, STORE_TENANT, STORE_ENGINE,
# ENGINE_VERSION, DATABASE_IMAGE, STORE_SPEC (JSON), BACKUP_KIND (scheduled, on-demand, pre-restore or pre-upgrade), KEEP_DAILY,
# KEEP_WEEKLY, KEEP_MONTHLY, KEEP_ON_DEMAND and RESTIC_CACHE_DIR. Secrets stay in the environment: no command line carries one.
#
# It writes `snapshot=<id> bytes=<n> added=<n>` as its termination message (TERMINATION_LOG, /dev/termination-log
# in a pod); when it fails, the tail of its output is, in restic's own words.
set -eu
work=${TMPDIR:-/tmp}

repository() {
    restic -o "s3.bucket-lookup=$S3_BUCKET_LOOKUP" -o "s3.region=$S3_REGION" "$@"
}

if [ ! -s "$BACKUP_DIR/database.sql" ]; then
    echo "no database dump in $BACKUP_DIR/database.sql: the dump container wrote nothing" >&2
    exit 1
fi

# The repository exists once the store's first backup made it; a failure to read it that is not "there is none"
# (an unreachable or refusing object store, a missing bucket) fails here with restic's words.
# With a region given, restic skips the bucket's location lookup, and a missing bucket looks like a missing
# repository; asked without one, the object store says which it is. restic would create a missing bucket: a backup
# never does, since a wrong bucket name must fail, not write the store's data somewhere nobody looks.
# A first failure that the second asking does not repeat (the object store was briefly unreachable) is no failure:
# the repository is there and answers.
if ! repository cat config >/dev/null 2>"$work/config.err"; then
    if grep -qE 'The specified key does not exist|repository does not exist' "$work/config.err" &&
        ! restic -o "s3.bucket-lookup=$S3_BUCKET_LOOKUP" cat config 2>&1 | grep -q 'bucket does not exist'; then
        repository init
    elif ! restic -o "s3.bucket-lookup=$S3_BUCKET_LOOKUP" cat config >/dev/null 2>"$work/config.again"; then
        if [ -s "$work/config.again" ]; then cat "$work/config.again" >&2; else cat "$work/config.err" >&2; fi
        exit 1
    fi
fi

database_bytes=$(wc -c <"$BACKUP_DIR/database.sql" | tr -d ' ')
# du may not read lost+found; it still counts the rest.
files_kib=$(du -sk "$BACKUP_DIR/files" 2>/dev/null | cut -f1)
files_bytes=$((files_kib * 1024))
bytes=$((database_bytes + files_bytes))
database_sha256=$(sha256sum "$BACKUP_DIR/database.sql" | cut -d' ' -f1)
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

cat >"$BACKUP_DIR/manifest.json" <<MANIFEST
{
  "format": "store-platform-backup/1",
  "store": "$STORE_ID",
  "tenant": "$STORE_TENANT",
  "engine": "$STORE_ENGINE",
  "engineVersion": "$ENGINE_VERSION",
  "databaseImage": "$DATABASE_IMAGE",
  "kind": "$BACKUP_KIND",
  "time": "$now",
  "spec": $STORE_SPEC,
  "database": {"file": "database.sql", "bytes": $database_bytes, "sha256": "$database_sha256"},
  "files": {"dir": "files", "bytes": $files_bytes}
}
MANIFEST

# A volume's lost+found is root's and no store data.
repository backup --json --host store --exclude "$BACKUP_DIR/files/lost+found" \
    --tag "kind=$BACKUP_KIND" --tag "engine=$STORE_ENGINE" --tag "version=$ENGINE_VERSION" --tag "bytes=$bytes" \
    "$BACKUP_DIR" >"$work/backup.json"
summary=$(grep '"message_type":"summary"' "$work/backup.json" | tail -n 1)
snapshot=$(printf '%s' "$summary" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p')
added=$(printf '%s' "$summary" | sed -n 's/.*"data_added":\([0-9]*\).*/\1/p')
if [ -z "$snapshot" ]; then
    echo "restic reported no snapshot: $summary" >&2
    exit 1
fi
echo "backed up $bytes bytes as snapshot $snapshot (${added:-0} bytes new to the repository)"

# Retention: scheduled backups by day, week and month; on-demand ones and those taken before a restore or an upgrade
# by count. A failure here leaves the new snapshot in place, and the next backup applies the policy again.
repository forget --host store --tag kind=scheduled --prune \
    --keep-daily "$KEEP_DAILY" --keep-weekly "$KEEP_WEEKLY" --keep-monthly "$KEEP_MONTHLY"
repository forget --host store --tag kind=on-demand --prune --keep-last "$KEEP_ON_DEMAND"
repository forget --host store --tag kind=pre-restore --prune --keep-last "$KEEP_ON_DEMAND"
repository forget --host store --tag kind=pre-upgrade --prune --keep-last "$KEEP_ON_DEMAND"

printf 'snapshot=%s bytes=%s added=%s\n' "$snapshot" "$bytes" "${added:-0}" >"${TERMINATION_LOG:-/dev/termination-log}"
