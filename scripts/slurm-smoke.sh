#!/usr/bin/env bash
# Exercise rea's local test cluster (scripts/slurm-up.sh); prints one line per check. SKIP_TIMEOUT=1 skips the ~90 s TIMEOUT check.
set -uo pipefail
W=${SLURM_LAB_DIR:-/tmp/rea-slurm}/smoke; rm -rf "$W"; mkdir -p "$W"; chmod 777 "$W"; cd "$W"
pass() { echo "PASS $*"; }; fail() { echo "FAIL $*"; }
haveacct=0; sacct -n -X -j 1 >/dev/null 2>&1 && ! sacct 2>&1 | grep -q disabled && haveacct=1
state() {  # final state of a job via sacct (if available) else scontrol
  if [ $haveacct = 1 ]; then  # sacct lags slurmctld by up to a few seconds: poll for a terminal state
    for i in $(seq 1 40); do s=$(sacct -n -X -P -j "$1" -o State | head -1 | awk '{print $1}')
      case "$s" in ""|PENDING|RUNNING|REQUEUED|COMPLETING) sleep 0.25;; *) break;; esac; done; echo "$s"
  else scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; fi; }
waitdone() { for i in $(seq 1 ${2:-300}); do [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0; sleep 0.5; done; return 1; }

sinfo -h -o '%P %a %D %T %G' | grep -q idle && pass "sinfo: $(sinfo -h -o '%P %a %D %T %G')" || fail sinfo
[ "$(srun hostname)" = "$(hostname -s)" ] && pass "srun hostname" || fail "srun hostname"
g=$(srun --gres=gpu:1 bash -c 'echo $CUDA_VISIBLE_DEVICES' 2>&1); [ "$g" = 0 ] && pass "srun --gres=gpu:1 -> CUDA_VISIBLE_DEVICES=$g" || fail "gres: $g"
g=$(srun --gpus-per-node=2 bash -c 'echo $CUDA_VISIBLE_DEVICES' 2>&1); [ "$g" = 0,1 ] && pass "srun --gpus-per-node=2 -> $g" || fail "gpus-per-node: $g"
srun --gres=gpu:3 true 2>/dev/null && fail "gpu:3 accepted" || pass "gpu:3 rejected"

t0=$(date +%s.%N); J=$(sbatch --parsable --wrap 'echo hello'); waitdone $J
[ "$(cat slurm-$J.out)" = hello ] && [ "$(state $J)" = COMPLETED ] && pass "sbatch --wrap ($(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.2f", a-b}')s turnaround)" || fail "sbatch $(state $J)"

A=$(sbatch --parsable --array=0-3 --gpus-per-node=1 --wrap 'sleep 2; [ $SLURM_ARRAY_TASK_ID = 2 ] && exit 3; echo ok $SLURM_ARRAY_TASK_ID $CUDA_VISIBLE_DEVICES')
D=$(sbatch --parsable --dependency=afterany:$A --wrap 'date +%s.%N')
R=$(squeue -h -j $D -o %r); [ "$R" = Dependency ] && pass "dependent job pending reason=$R" || fail "dep reason=$R"
waitdone $D
if [ $haveacct = 1 ]; then
  echo "     squeue -t all right after: $(squeue -h -t all -j $A -o '%i:%T' | tr '\n' ' ')"
  for i in $(seq 1 40); do s=$(sacct -n -X -P -j $A -o JobID,State | tr '\n' ' '); [ "$(echo $s | wc -w)" = 4 ] && ! echo "$s" | grep -q -E 'PENDING|RUNNING' && break; sleep 0.25; done
  echo "     array states (sacct, polled $i): $s"
  echo "$s" | grep -q "${A}_2|FAILED" && pass "array task 2 FAILED, others COMPLETED" || fail "array $s"
  aend=$(sacct -n -X -P -j $A -o End | sort | tail -1); dstart=$(sacct -n -X -P -j $D -o Start)
  [[ "$dstart" > "$aend" || "$dstart" == "$aend" ]] && [ "$(state $D)" = COMPLETED ] && pass "afterany dependent ran after array end ($aend -> $dstart)" || fail "dep $aend $dstart"
else
  ls slurm-${A}_*.out | wc -l | grep -q 4 && [ -s slurm-$D.out ] && pass "array + afterany dependent ran (no sacct)" || fail "array/dep"
fi

J=$(sbatch --parsable --wrap 'sleep 300'); sleep 2; scancel $J; waitdone $J 20; s=$(state $J); [ "$s" = CANCELLED ] && pass "scancel -> $s" || fail "scancel -> $s"

J=$(sbatch --parsable --wrap 'echo run$SLURM_RESTART_COUNT; sleep 300'); for i in $(seq 50); do [ "$(squeue -h -j $J -o %T)" = RUNNING ] && break; sleep 0.2; done
scontrol requeue $J; sleep 3; r=$(squeue -h -j $J -o '%T/%r'); scontrol update jobid=$J StartTime=now
for i in $(seq 50); do [ "$(squeue -h -j $J -o %T)" = RUNNING ] && break; sleep 0.2; done
rc=$(scontrol show job $J | grep -o 'Restarts=[0-9]*'); [ "$rc" = Restarts=1 ] && pass "scontrol requeue ($r, then StartTime=now -> running again, $rc)" || fail "requeue $r $rc"
scancel $J; waitdone $J 20

M=$(sbatch --parsable --mem=100M --wrap 'python3 -c "import time; a=b\"x\"*(1024**3); time.sleep(15); print(\"survived\")"'); waitdone $M 60
s=$(state $M); echo "     OOM job: state=$s out=$(tr '\n' ' ' < slurm-$M.out | cut -c1-160)"
case "$s" in OUT_OF_MEMORY|OUT_OF_ME*) pass "OOM -> OUT_OF_MEMORY";; FAILED|CANCELLED) grep -q -i 'memory' slurm-$M.out && pass "OOM -> $s (+ 'exceeded memory limit' in output)" || fail "OOM $s";; *) fail "OOM -> $s";; esac
[ $haveacct = 1 ] && echo "     $(sacct -n -P -j $M -o JobID,State,ExitCode,MaxRSS | tr '\n' ' ')"

if [ "${SKIP_TIMEOUT:-0}" != 1 ]; then
  t0=$(date +%s); T=$(sbatch --parsable --time=1 --wrap 'sleep 300'); waitdone $T 400
  s=$(state $T); [ "$s" = TIMEOUT ] && pass "--time=1 -> TIMEOUT after $(( $(date +%s) - t0 ))s" || fail "timeout -> $s"
fi
if [ $haveacct = 1 ]; then pass "sacct works"; else echo "INFO sacct unavailable (accounting_storage/none)"; fi
