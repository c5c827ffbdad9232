#!/usr/bin/env bash
# The Slurm path for real: a one-node Slurm cluster on this machine (Debian's slurm-wlm and munge),
# the smoke suite submitted with examples/slurm/nightly.sbatch as an array of 3 tasks on the CPU
# backend, the dependent merge job awaited, and the merged variant set checked against an unsharded
# run's. Needs root (it starts munged, slurmctld and slurmd) and a built precheck.
#
#   scripts/ci_slurm.sh [PRECHECK_BINARY]     (default: target/debug/precheck)
set -euo pipefail
cd "$(dirname "$0")/.."
precheck="$(realpath "${1:-target/debug/precheck}")"
work="$(mktemp -d /tmp/precheck-slurm.XXXXXX)"
chmod 755 "$work"

say() { echo "ci_slurm: $*"; }
fail() {
  echo "ci_slurm: FAILED: $*" >&2
  for log in "$work"/*.log "$work"/runs/slurm-*.out; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key, and the daemon as its own user, its socket where the clients look.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -u munge -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi
munge -n | unmunge >/dev/null || fail "munge does not work"

# Slurm: one node, this host, every CPU; no cgroups (containers often lack them), no accounting.
host="$(hostname -s)"
cpus="$(nproc)"
memory_mb="$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)"
mkdir -p /etc/slurm "$work/spool/ctld" "$work/spool/d"
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=precheck-ci
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$work/spool/ctld
SlurmdSpoolDir=$work/spool/d
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

# slurmctld writes its state into the spool as it shuts down, so the daemons are waited for before
# the folder goes (a CI run once failed on `rm: Directory not empty` when it raced them), and the
# cleanup never changes the script's verdict.
stop_daemons() {
  local pids=()
  for pidfile in "$work/slurmd.pid" "$work/slurmctld.pid"; do
    if [ -f "$pidfile" ]; then
      pids+=("$(cat "$pidfile")")
      kill "${pids[-1]}" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap 'status=$?; stop_daemons; rm -rf "$work" || say "could not remove $work"; exit $status' EXIT
stop_daemons
slurmctld -c -i || fail "slurmctld did not start"
slurmd -c || fail "slurmd did not start"
for _ in $(seq 60); do
  if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then break; fi
  sleep 1
done
sinfo -h -o '%t' | grep -qE '^(idle|mix|alloc)' || fail "the node did not come up: $(sinfo 2>&1)"
say "cluster up: $(sinfo -h -o '%P %D %t %c CPUs')"

# The array job and its merge, as a farm would submit them.
submitted="$(SHARDS=3 BACKEND=cpu RUNS="$work/runs" PRECHECK="$precheck" \
  PRECHECK_RUN_ARGS="--iterations 2 --warmup 0" examples/slurm/nightly.sbatch suites/smoke.yaml)"
say "submitted: $submitted"
array="$(sed -E 's/.*array=([0-9]+).*/\1/' <<<"$submitted")"
merge="$(sed -E 's/.*merge=([0-9]+).*/\1/' <<<"$submitted")"
deadline=$((SECONDS + 600))
while squeue -h -j "$array,$merge" 2>/dev/null | grep -q .; do
  [ "$SECONDS" -lt "$deadline" ] || fail "jobs still queued after 10 minutes: $(squeue)"
  sleep 2
done
merged="$work/runs/$array/merged"
[ -s "$merged/results.jsonl" ] || fail "no merged results in $merged"

# Each shard ran in its own array task, and the merge holds the unsharded run's variants once.
for task in 0 1 2; do
  shard="$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["settings"]["shard"]; print("%d/%d" % (s["index"], s["count"]))' \
    "$work/runs/$array/shard-$task/run.json")"
  [ "$shard" = "$task/3" ] || fail "task $task ran shard $shard"
done
"$precheck" run suites/smoke.yaml --iterations 2 --warmup 0 --out "$work/unsharded" >/dev/null
ids() { python3 -c 'import json,sys; print("\n".join(sorted(json.loads(l)["id"] for l in open(sys.argv[1]) if l.strip())))' "$1/results.jsonl"; }
if ! diff <(ids "$work/unsharded") <(ids "$merged") >"$work/ids.diff"; then
  fail "merged variants differ from the unsharded run's: $(cat "$work/ids.diff")"
fi
say "ok: 3 array tasks merged into $(ids "$merged" | wc -l) variants, the unsharded run's set"
