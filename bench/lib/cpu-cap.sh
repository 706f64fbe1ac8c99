# Sourced by the bench scripts: CPU caps per process, as pods with CPU
# limits on machines of their own would have. Needs root and a CPU cgroup
# controller (cgroup v2, or v1's cpu hierarchy).
#
# cap_cpu PID NAME CPUS: moves PID into a fresh CPU cgroup NAME capped at
# CPUS (a decimal, e.g. 0.5). remove_cpu_caps: removes every cgroup made
# (call it on exit, after the capped processes stopped).

cpu_cap_groups=()

cap_cpu() {
  local pid=$1 name=$2 cpus=$3 period=10000 quota group
  quota=$(python3 -c "print(int($cpus * 10000))")
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    group=/sys/fs/cgroup/$name
    mkdir -p "$group" && echo "$quota $period" > "$group/cpu.max"
  elif [ -d /sys/fs/cgroup/cpu ]; then
    group=/sys/fs/cgroup/cpu/$name
    mkdir -p "$group" && echo $period > "$group/cpu.cfs_period_us" &&
      echo "$quota" > "$group/cpu.cfs_quota_us"
  else
    echo "error: no CPU cgroup controller under /sys/fs/cgroup; run without a CPU cap" >&2
    exit 1
  fi || { echo "error: cannot create CPU cgroups (run as root, or without a CPU cap)" >&2; exit 1; }
  cpu_cap_groups+=("$group")
  echo "$pid" > "$group/cgroup.procs"
}

remove_cpu_caps() {
  local group
  for group in "${cpu_cap_groups[@]}"; do rmdir "$group" 2>/dev/null || true; done
}
