#!/usr/bin/env bash
# Stop rea's local test cluster: the daemons started by scripts/slurm-up.sh, by the PIDs it
# recorded (never by name). Idempotent: when nothing runs it says so and exits 0.
#   slurm-down.sh           cancel all jobs, stop slurmd, slurmctld, slurmdbd, mariadbd, munged
#   slurm-down.sh --purge   additionally delete controller state, spool, logs and
#                           empty slurm cgroup directories (accounting DB is dropped at next start)
set -uo pipefail
LAB=${SLURM_LAB_DIR:-/tmp/rea-slurm}
RUN=$LAB/run
PURGE=0; [ "${1:-}" = --purge ] && PURGE=1
T0=$(date +%s.%N)
el() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{printf "%.2f", a-b}'; }

if ! ls "$RUN"/*.pid >/dev/null 2>&1; then
  echo "slurm-down: nothing recorded in $RUN (already down)"
  [ "$PURGE" = 1 ] || exit 0
fi

stop_pid() {  # name expected_comm
  local f="$RUN/$1.pid" comm=$2 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null && [ "$(ps -o comm= -p "$pid")" = "$comm" ]; then
    kill -TERM "$pid"
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "  $1 ($pid) ignored TERM, sending KILL"; kill -KILL "$pid"; sleep 0.2; fi
    echo "  stopped $1 pid $pid (+$(el)s)"
  fi
  rm -f "$f"
}

# 1. cancel every job so no slurmstepd outlives slurmd
if [ -s "$RUN/slurmctld.pid" ] && kill -0 "$(cat "$RUN/slurmctld.pid")" 2>/dev/null; then
  ids=$(squeue -h -o %A 2>/dev/null | sort -u)
  if [ -n "$ids" ]; then
    echo "  cancelling jobs: $(echo $ids)"
    scancel $ids 2>/dev/null
    for i in $(seq 1 150); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

# 2. daemons, in reverse start order
stop_pid slurmd slurmd
stop_pid slurmctld slurmctld
stop_pid slurmdbd slurmdbd
stop_pid mariadbd mariadbd
stop_pid munged munged

left=$(ps -eo pid=,comm= | awk '$2=="slurmstepd"{print $1}')
[ -n "$left" ] && echo "  WARNING: slurmstepd still running: $left (left alone)"

if [ "$PURGE" = 1 ]; then
  rm -rf "$LAB/state" "$LAB/log"
  node=$(hostname -s)
  for d in /sys/fs/cgroup/*/slurm_"$node" /sys/fs/cgroup/*/slurm; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  echo "  purged state/log"
fi
echo "slurm-down done in $(el)s"
