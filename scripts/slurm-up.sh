#!/usr/bin/env bash
# rea's local test cluster: a throw-away single-node Slurm (Debian 12 packages, Slurm 22.05)
# without systemd: munged + [mariadbd + slurmdbd] + slurmctld + slurmd, all as background
# daemons whose PIDs are written to $LAB/run/*.pid (scripts/slurm-down.sh kills exactly those).
# Adapted from a tested recipe; see docs/slurm.md. Run as root. Idempotent: when the cluster is
# already up it says so and exits 0.
#
# Jobs are submitted as the calling user. A non-root submitter needs a Python interpreter that
# is not under /root (mode 0700: slurmd, running the job as that user, cannot read it).
#
# Environment knobs (all optional):
#   SLURM_LAB_DIR=/tmp/rea-slurm  state, logs, pid files, fake GPU device nodes
#   SLURM_LAB_DBD=1               1: MariaDB + slurmdbd (real sacct); 0: no accounting
#   SLURM_LAB_CGROUP=auto         auto|v1|off  (off = proctrack/linuxproc + OverMemoryKill)
#   SLURM_LAB_AUTH=munge          munge|none
#   SLURM_LAB_GPUS=2              number of fake GPUs (0 = no GRES)
#   SLURM_LAB_INSTALL=1           apt-get install missing packages
#   SLURM_LAB_KEEP_STATE=0        1: keep controller state + accounting DB from last run
set -euo pipefail

LAB=${SLURM_LAB_DIR:-/tmp/rea-slurm}
DBD=${SLURM_LAB_DBD:-1}
CGROUP=${SLURM_LAB_CGROUP:-auto}
AUTH=${SLURM_LAB_AUTH:-munge}
NGPU=${SLURM_LAB_GPUS:-2}
INSTALL=${SLURM_LAB_INSTALL:-1}
KEEP=${SLURM_LAB_KEEP_STATE:-0}
ETC=/etc/slurm
RUN=$LAB/run
LOG=$LAB/log
STATE=$LAB/state
T0=$(date +%s.%N)
el() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{printf "%.2f", a-b}'; }
say() { echo "[slurm-up +$(el)s] $*"; }

[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

# ---------------------------------------------------------------- already up?
alive=0; dead=0
for d in munged slurmctld slurmd; do
  [ "$d" = munged ] && [ "$AUTH" != munge ] && continue
  f="$RUN/$d.pid"
  if [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then alive=$((alive + 1)); else dead=$((dead + 1)); fi
done
if [ "$alive" -gt 0 ] && [ "$dead" = 0 ] && scontrol ping 2>/dev/null | grep -q UP; then
  say "already up (lab $LAB); nothing to do"
  sinfo
  exit 0
fi
if [ "$alive" = 0 ] && command -v scontrol >/dev/null && timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
  say "a Slurm controller not started by this script already answers; using it as is"
  sinfo
  exit 0
fi
if ls "$RUN"/*.pid >/dev/null 2>&1; then
  say "partial or stale cluster in $LAB: stopping what is left first"
  SLURM_LAB_DIR="$LAB" bash "$(dirname "$0")/slurm-down.sh" || true
fi

# ---------------------------------------------------------------- packages
if [ "$INSTALL" = 1 ]; then
  pkgs="slurmctld slurmd slurm-client munge"
  [ "$DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  missing=""
  for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    say "installing:$missing"
    apt-get update -qq
    # no systemd here: keep package scripts from trying to start services
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    say "installed"
  fi
fi

# ---------------------------------------------------------------- dirs
mkdir -p "$RUN" "$LOG" "$STATE/ctld" "$STATE/d" "$LAB/fakedev" "$ETC"
if [ "$KEEP" != 1 ]; then
  rm -rf "$STATE/ctld"/* "$STATE/d"/* "$LOG"/*
fi
chown -R slurm:slurm "$STATE/ctld" "$LOG"
chmod 755 "$LAB"

# ---------------------------------------------------------------- node facts
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
REALMEM=$(( MEM_MB * 90 / 100 ))
# slurmd -C gives the exact topology line; reuse its socket/core/thread layout
TOPO=$(slurmd -C 2>/dev/null | head -1 | grep -o 'CPUs=.*ThreadsPerCore=[0-9]*' || echo "CPUs=$CPUS")

# ---------------------------------------------------------------- cgroup choice
if [ "$CGROUP" = auto ]; then
  if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ -w /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/freezer ]; then
    CGROUP=v1
  else
    CGROUP=off
  fi
fi
if [ "$CGROUP" = v1 ]; then
  PROCTRACK=proctrack/cgroup; TASK=task/cgroup; GATHERPARAMS=""
  cat > $ETC/cgroup.conf <<EOF
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
# never yes with the fake GPUs of gres.conf: they are /dev/null look-alikes (c 1:3)
ConstrainDevices=no
EOF
else
  PROCTRACK=proctrack/linuxproc; TASK=task/none; GATHERPARAMS="JobAcctGatherParams=OverMemoryKill"
  rm -f $ETC/cgroup.conf
fi

# ---------------------------------------------------------------- fake GPUs
GRES_NODE=""; GRES_TYPES=""; ACCT_TRES=""
rm -f $ETC/gres.conf
if [ "$NGPU" -gt 0 ]; then
  # gres/gpu needs one character device per GPU (file-less GPUs are dropped by slurmd,
  # regular files are rejected); make /dev/null look-alikes
  ok=1
  for i in $(seq 0 $((NGPU - 1))); do
    [ -c "$LAB/fakedev/gpu$i" ] || mknod "$LAB/fakedev/gpu$i" c 1 3 2>/dev/null || { ok=0; break; }
    chmod 666 "$LAB/fakedev/gpu$i"
  done
  GRES_NODE="Gres=gpu:$NGPU"; GRES_TYPES="GresTypes=gpu"
  if [ $ok = 1 ]; then
    printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s\n' "$NODE" "$LAB/fakedev/gpu[0-$((NGPU - 1))]" > $ETC/gres.conf
  else  # mknod not allowed (container): reuse existing harmless char devices, one line each
    echo "AutoDetect=off" > $ETC/gres.conf
    devs=(/dev/zero /dev/full /dev/urandom /dev/random /dev/null /dev/tty)
    [ "$NGPU" -le ${#devs[@]} ] || { echo "at most ${#devs[@]} fake GPUs without mknod" >&2; exit 1; }
    for i in $(seq 0 $((NGPU - 1))); do echo "NodeName=$NODE Name=gpu File=${devs[$i]}" >> $ETC/gres.conf; done
  fi
  ACCT_TRES="AccountingStorageTRES=gres/gpu"
fi

# ---------------------------------------------------------------- accounting
if [ "$DBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
$ACCT_TRES"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi

if [ "$AUTH" = munge ]; then
  AUTHCONF="AuthType=auth/munge
CredType=cred/munge"
else
  AUTHCONF="AuthType=auth/none
CredType=cred/none"
fi

# ---------------------------------------------------------------- slurm.conf
cat > $ETC/slurm.conf <<EOF
ClusterName=lab
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
$AUTHCONF
MpiDefault=none
MailProg=/bin/true
ProctrackType=$PROCTRACK
TaskPlugin=$TASK
ReturnToService=2
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
# default batch_sched_delay=3 s adds ~2.5 s to every sbatch start
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
$GRES_TYPES
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
$GATHERPARAMS
$ACCT
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.txt
MinJobAge=300
KillWait=5
InactiveLimit=0
OverTimeLimit=0
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 $TOPO RealMemory=$REALMEM $GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
say "wrote $ETC/slurm.conf (node=$NODE cgroup=$CGROUP dbd=$DBD auth=$AUTH gpus=$NGPU)"

# ---------------------------------------------------------------- munge
if [ "$AUTH" = munge ]; then
  [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge; chown munge:munge /run/munge /var/lib/munge /var/log/munge; chmod 755 /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  for i in $(seq 1 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$RUN/munged.pid"
  munge -n | unmunge >/dev/null
  say "munged pid $(cat $RUN/munged.pid)"
fi

# ---------------------------------------------------------------- mariadb + slurmdbd
if [ "$DBD" = 1 ]; then
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
      --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
      --skip-networking --innodb-buffer-pool-size=128M \
      > "$LOG/mariadb.log" 2>&1 < /dev/null &
  echo $! > "$RUN/mariadbd.pid"
  for i in $(seq 1 150); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
  mariadb -e 'select 1' >/dev/null
  [ "$KEEP" != 1 ] && mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db"
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  say "mariadbd pid $(cat $RUN/mariadbd.pid)"
  cat > $ETC/slurmdbd.conf <<EOF
AuthType=$( [ "$AUTH" = munge ] && echo auth/munge || echo auth/none )
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmdbpass
EOF
  chown slurm:slurm $ETC/slurmdbd.conf; chmod 600 $ETC/slurmdbd.conf
  /usr/sbin/slurmdbd
  # slurm.conf already points at slurmdbd, so sacctmgr talks to it directly
  for i in $(seq 1 150); do timeout 5 sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.2; done
  timeout 5 sacctmgr -n show cluster >/dev/null 2>&1 || { echo "slurmdbd did not start" >&2; tail -20 "$LOG/slurmdbd.log" >&2; exit 1; }
  say "slurmdbd pid $(cat $RUN/slurmdbd.pid)"
fi

# ---------------------------------------------------------------- slurmctld + slurmd
/usr/sbin/slurmctld
for i in $(seq 1 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.1; done
say "slurmctld pid $(cat $RUN/slurmctld.pid)"
/usr/sbin/slurmd
for i in $(seq 1 100); do [ -s "$RUN/slurmd.pid" ] && break; sleep 0.1; done
say "slurmd pid $(cat $RUN/slurmd.pid)"

for i in $(seq 1 300); do
  st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
  case "$st" in idle) break ;; drain*|drained|inval*|down*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;; esac
  sleep 0.2
done
if [ "$st" != idle ]; then echo "node not idle: $st" >&2; scontrol show node "$NODE" >&2; exit 1; fi
if [ "$DBD" = 1 ]; then
  for i in $(seq 1 100); do sacctmgr -n list cluster format=cluster 2>/dev/null | grep -q lab && break; sleep 0.2; done
fi
say "cluster ready"
sinfo
