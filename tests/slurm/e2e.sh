#!/usr/bin/env bash
# End-to-end test of sharded sweeps on a real one-node Slurm cluster (Debian's
# slurm-wlm and munge; a documented single-node set-up):
#  1. the generated job array + merge job gives exactly the bytes of a local
#     unsharded run;
#  2. a shard killed mid-run and resubmitted with --resume still does.
# Needs root. Starts munged, slurmctld and slurmd, and stops exactly those
# (by PID / scontrol shutdown) on exit. Prints the wall times it measured.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MESOBENCH_BIN:-$ROOT/target/release/mesobench}
SC=$ROOT/scenarios/sweep_open_time_pressure.toml
WORK=$(mktemp -d /tmp/mesobench-slurm.XXXXXX)
say() { echo "slurm-e2e: $*"; }
fail() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root to start the Slurm daemons"
[ -x "$BIN" ] || fail "no mesobench binary at $BIN (cargo build --release)"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

MUNGE_PID=""
cleanup() {
  set +e
  if [ -n "${SLURM_UP:-}" ]; then scontrol shutdown >/dev/null 2>&1; sleep 1; fi
  [ -n "$MUNGE_PID" ] && kill "$MUNGE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- cluster ---------------------------------------------------------------
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
[ -f /etc/munge/munge.key ] || mungekey -c
chown munge:munge /etc/munge/munge.key /run/munge && chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  sleep 1
  MUNGE_PID=$(cat /run/munge/munged.pid 2>/dev/null || true)
fi
munge -n | unmunge >/dev/null || fail "munge does not work"
H=$(hostname); MEM=$(free -m | awk '/Mem:/{print int($2*0.9)}')
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=mesobench-test
SlurmctldHost=$H
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MinJobAge=600
NodeName=$H CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -c && slurmd && SLURM_UP=1   # -c: no jobs left over from an earlier run
for _ in $(seq 60); do
  state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 1
done
[ "$state" = idle ] || fail "the node is not idle (state '$state')"
say "cluster up ($(sinfo -h -o '%D node, %c CPUs, %t'))"

# --- helpers -----------------------------------------------------------------
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1; }
wait_job() { # wait until job $1 ends; echo its state
  local s
  for _ in $(seq 600); do
    s=$(job_state "$1")
    case "$s" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "$s"; return;; esac
    sleep 0.5
  done
  echo "TIMEOUT_WAITING"
}
epoch() { date -d "$1" +%s 2>/dev/null || echo 0; }
run_seconds() { # running time of array $1 and merge $2, queue wait excluded: first start to merge end
  local first end
  first=$(scontrol show job "$1" | sed -n 's/.*StartTime=\([^ ]*\).*/\1/p' | sort | head -1)
  end=$(scontrol show job "$2" | sed -n 's/.*EndTime=\([^ ]*\).*/\1/p' | head -1)
  echo $(( $(epoch "$end") - $(epoch "$first") ))
}
submit() { # run the driver script with optional indices; sets ARRAY and MERGE
  local line
  line=$(bash "$1" ${2:-})
  ARRAY=$(echo "$line" | sed -n 's/submitted array \([0-9]*\).*/\1/p')
  MERGE=$(echo "$line" | sed -n 's/.* and merge \([0-9]*\).*/\1/p')
  [ -n "$ARRAY" ] && [ -n "$MERGE" ] || fail "could not submit: $line"
}

# --- case 1: array + merge = local unsharded bytes ----------------------------
SETS=(--set sweep.replicates=3 --set session.shots=2)
t0=$(date +%s.%N)
"$BIN" sweep "$SC" --out "$WORK/local" --threads 1 --quiet "${SETS[@]}"
t1=$(date +%s.%N)
say "local unsharded run: $(echo "$t1 - $t0" | bc) s"
"$BIN" sweep "$SC" --out "$WORK/slurm" --threads 1 "${SETS[@]}" --slurm-script 4 >/dev/null
submit "$WORK/slurm/slurm_sweep.sh"
[ "$(wait_job "$MERGE")" = COMPLETED ] || { cat "$WORK"/slurm/slurm/* 2>/dev/null; fail "merge job $MERGE did not complete"; }
cmp "$WORK/local/sweep.csv" "$WORK/slurm/sweep.csv" || fail "Slurm sweep.csv differs from the local run"
say "case 1 passed: 4-shard array + merge = local bytes; running time through Slurm $(run_seconds "$ARRAY" "$MERGE") s (queue wait excluded)"

# --- case 2: kill one shard mid-run, resubmit it with --resume ------------------
SETS=(--set sweep.replicates=40 --set session.shots=2 --set 'sweep.parameters."firmware.open_time_ms"={ linspace = [20.0, 80.0, 60] }')
"$BIN" sweep "$SC" --out "$WORK/local2" --threads 2 --quiet "${SETS[@]}"
"$BIN" sweep "$SC" --out "$WORK/slurm2" --threads 1 "${SETS[@]}" --slurm-script 2 >/dev/null
submit "$WORK/slurm2/slurm_sweep.sh"
PARTIAL="$WORK/slurm2/.sweep.shard-00001-of-00002.csv.partial"
for _ in $(seq 1200); do
  [ -f "$PARTIAL" ] && [ "$(wc -l < "$PARTIAL")" -gt 1 ] && break
  sleep 0.1
done
[ -f "$PARTIAL" ] && [ "$(wc -l < "$PARTIAL")" -gt 1 ] || { squeue; ls -la "$WORK/slurm2"; cat "$WORK"/slurm2/slurm/* 2>/dev/null | tail -20; fail "shard 1 never wrote a row"; }
scancel "${ARRAY}_1"
state=$(wait_job "${ARRAY}_1")
[ "$state" = CANCELLED ] || fail "shard 1 was not cancelled mid-run (state $state)"
rows=$(( $(wc -l < "$PARTIAL") - 1 ))
scancel "$MERGE" 2>/dev/null || true   # its dependency can no longer be met
say "killed shard 1 with $rows rows on disk"
wait_job "${ARRAY}_0" >/dev/null
submit "$WORK/slurm2/slurm_sweep.sh" 1
[ "$(wait_job "$MERGE")" = COMPLETED ] || { cat "$WORK"/slurm2/slurm/* 2>/dev/null; fail "merge after resubmission did not complete"; }
cmp "$WORK/local2/sweep.csv" "$WORK/slurm2/sweep.csv" || fail "resumed Slurm sweep.csv differs from the local run"
say "case 2 passed: killed shard resubmitted with --resume; merged bytes = local bytes"
echo "slurm-e2e: 2 passed, 0 failed"
