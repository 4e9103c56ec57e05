#!/bin/sh
# berth's cgroup tests on a pure cgroup v2 kernel, run inside the VM of scripts/test-cgroup-v2
# (busybox sh as root; the caller sits in /test.slice/session.scope like a systemd login). Each
# check prints "ok - NAME" or "FAIL - NAME: want ..., got ..."; the counts go to /tmp/result.
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
# eq NAME WANT GOT
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want [$2], got [$3]"; fi; }
# has NAME NEEDLE HAYSTACK
has() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: [$2] not in [$3]" ;; esac; }
# hasnt NAME NEEDLE HAYSTACK
hasnt() { case "$3" in *"$2"*) bad "$1: [$2] found in [$3]" ;; *) ok "$1" ;; esac; }
# true_ NAME COMMAND...: the command succeeds
true_() { n=$1; shift; if "$@"; then ok "$n"; else bad "$n: '$*' failed"; fi; }
finish() { echo "pass=$pass fail=$fail" > /tmp/result; }
trap finish EXIT

export BERTH_ROOT=/var/lib/berth
# The VM has no nft and no network to offer: containers run with --network none (cgroups are
# what is tested here; the bridge network has its own tests on the host).
berth() {
  case "$1" in
    run|create) c=$1; shift; command berth "$c" --network none "$@" ;;
    *) command berth "$@" ;;
  esac
}
CG=/sys/fs/cgroup
IMG=localhost/busybox
run() { berth run --rm "$@" 2>&1; }
# cid NAME: the full id of a container
cid() { berth inspect -f '{{.Id}}' "$1"; }
cpid() { berth inspect -f '{{.State.Pid}}' "$1"; }

echo "== setup"
true_ "load the fixture image" berth load -q -i /tests/busybox.tar
eq "only cgroup2 is mounted, at /sys/fs/cgroup" "/sys/fs/cgroup cgroup2" "$(awk '$3 ~ /^cgroup/ {print $2, $3}' /proc/mounts)"
eq "caller sits in a leaf" "0::/test.slice/session.scope" "$(cat /proc/self/cgroup)"

echo "== placement and cgroup namespace (docker's default on v2: private)"
id=$(berth run -d --name place $IMG sleep 300)
pid=$(cpid place)
eq "container cgroup is /berth/<id>" "0::/berth/$id" "$(cat /proc/$pid/cgroup)"
eq "/proc/self/cgroup inside reads 0::/" "0::/" "$(berth exec place cat /proc/self/cgroup)"
eq "inspect CgroupnsMode" "private" "$(berth inspect -f '{{.HostConfig.CgroupnsMode}}' place)"
eq "/sys/fs/cgroup inside shows the container's own cgroup" "max" "$(berth exec place cat /sys/fs/cgroup/memory.max)"
eq "cgroup.procs inside lists the init as pid 1" 1 "$(berth exec place head -n 1 /sys/fs/cgroup/cgroup.procs)"
hasnt "the host's test.slice is not visible inside" "test.slice" "$(berth exec place ls /sys/fs/cgroup)"
true_ "rm -f" berth rm -f place
true_ "cgroup removed with the container" test ! -e "$CG/berth/$id"
eq "--cgroupns host shows the host path" "0::/berth/" "$(run --cgroupns host $IMG cat /proc/self/cgroup | cut -c1-10)"
out=$(berth run --rm --cgroupns bogus $IMG true 2>&1); rc=$?
eq "--cgroupns bogus exits 125" 125 "$rc"
has "--cgroupns bogus says why" "invalid CGROUP mode" "$out"

echo "== --cgroup-parent"
id=$(berth run -d --cgroup-parent /custom.slice --name par $IMG sleep 300)
eq "absolute parent" "0::/custom.slice/$id" "$(cat /proc/$(cpid par)/cgroup)"
berth rm -f par >/dev/null
true_ "cgroup under the parent removed" test ! -e "$CG/custom.slice/$id"
rmdir $CG/custom.slice
id=$(berth run -d --cgroup-parent rel -m 64m --name rel $IMG sleep 300)
eq "relative parent goes beside the caller's cgroup" "0::/test.slice/rel/$id" "$(cat /proc/$(cpid rel)/cgroup)"
eq "memory limit under a relative parent" 67108864 "$(cat $CG/test.slice/rel/$id/memory.max)"
eq "no controllers enabled in the caller's cgroup" "" "$(cat $CG/test.slice/session.scope/cgroup.subtree_control)"
berth rm -f rel >/dev/null
rmdir $CG/test.slice/rel

echo "== memory"
eq "-m sets memory.max" 67108864 "$(run -m 64m $IMG cat /sys/fs/cgroup/memory.max)"
eq "swap defaults to the memory amount" 67108864 "$(run -m 64m $IMG cat /sys/fs/cgroup/memory.swap.max)"
eq "--memory-swap -1 is unlimited swap" max "$(run -m 64m --memory-swap -1 $IMG cat /sys/fs/cgroup/memory.swap.max)"
eq "--memory-reservation sets memory.low" 33554432 "$(run -m 64m --memory-reservation 32m $IMG cat /sys/fs/cgroup/memory.low)"
# awk doubles a string until the 32 MiB limit kills it: exit 137 and OOMKilled, as docker.
berth run --name oom -m 32m $IMG awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }' >/dev/null 2>&1; rc=$?
eq "OOM kill exits 137" 137 "$rc"
eq "OOMKilled in inspect" true "$(berth inspect -f '{{.State.OOMKilled}}' oom)"
berth rm oom >/dev/null
out=$(berth run --rm -m 64m --oom-kill-disable $IMG echo ran 2>&1); rc=$?
eq "--oom-kill-disable runs the container" 0 "$rc"
has "--oom-kill-disable prints docker's warning" "WARNING: Your kernel does not support OomKillDisable. OomKillDisable discarded." "$out"
has "--oom-kill-disable output" "ran" "$out"

echo "== cpu"
eq "--cpus 0.5 sets cpu.max" "50000 100000" "$(run --cpus 0.5 $IMG cat /sys/fs/cgroup/cpu.max)"
eq "--cpu-quota/--cpu-period set cpu.max" "20000 50000" "$(run --cpu-quota 20000 --cpu-period 50000 $IMG cat /sys/fs/cgroup/cpu.max)"
eq "--cpu-shares 512 is cpu.weight 20" 20 "$(run --cpu-shares 512 $IMG cat /sys/fs/cgroup/cpu.weight)"
# A busy loop for a second under 0.2 CPUs must be throttled.
n=$(run --cpus 0.2 $IMG sh -c 'timeout 1 sh -c "while :; do :; done"; cat /sys/fs/cgroup/cpu.stat' | sed -n 's/^nr_throttled //p')
if [ -n "$n" ] && [ "$n" -gt 0 ] 2>/dev/null; then ok "--cpus throttles a busy loop (nr_throttled $n)"; else bad "--cpus throttles a busy loop: nr_throttled [$n]"; fi
out=$(berth run --rm --cpu-rt-runtime 950000 $IMG true 2>&1); rc=$?
eq "--cpu-rt-runtime on v2 exits 125" 125 "$rc"
has "--cpu-rt-runtime on v2 says why" "Your kernel does not support CPU real-time scheduler" "$out"
eq "--cpuset-cpus 1" 1 "$(run --cpuset-cpus 1 $IMG cat /sys/fs/cgroup/cpuset.cpus.effective)"
has "--cpuset-cpus 1 pins the process" "Cpus_allowed_list:	1" "$(run --cpuset-cpus 1 $IMG cat /proc/self/status)"

echo "== pids"
eq "--pids-limit sets pids.max" 5 "$(run --pids-limit 5 $IMG cat /sys/fs/cgroup/pids.max)"
# busybox sh gives up at the first failed fork: the loop runs in a subshell, then the count is read.
out=$(run --pids-limit 5 $IMG sh -c '(for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait); sleep 2; cat /sys/fs/cgroup/pids.events')
has "the pids limit stops forks" "can't fork" "$out"
n=$(echo "$out" | sed -n 's/^max //p')
if [ -n "$n" ] && [ "$n" -gt 0 ]; then ok "pids.events counts the refusals ($n)"; else bad "pids.events counts the refusals: [$out]"; fi

echo "== io"
dev=$(cat /sys/block/nvme0n1/dev)
has "--device-read-bps sets io.max" "$dev rbps=1048576 wbps=max riops=max wiops=max" "$(run --device-read-bps /dev/nvme0n1:1mb $IMG cat /sys/fs/cgroup/io.max)"
has "--device-write-iops sets io.max" "$dev rbps=max wbps=max riops=max wiops=300" "$(run --device-write-iops /dev/nvme0n1:300 $IMG cat /sys/fs/cgroup/io.max)"
has "--device-read-iops and --device-write-bps" "$dev rbps=max wbps=2097152 riops=100 wiops=max" "$(run --device-read-iops /dev/nvme0n1:100 --device-write-bps /dev/nvme0n1:2mb $IMG cat /sys/fs/cgroup/io.max)"
# Reading 3 MiB (O_DIRECT, from an area the guest never touched) at 1 MiB/s takes at least 2 s.
t0=$(date +%s)
run --device-read-bps /dev/nvme0n1:1mb --device /dev/nvme0n1:/dev/disk $IMG dd if=/dev/disk of=/dev/null bs=64k count=48 skip=16000 iflag=direct >/dev/null
t1=$(date +%s)
if [ $((t1 - t0)) -ge 2 ]; then ok "read bps throttles direct reads ($((t1 - t0)) s)"; else bad "read bps throttles direct reads: took $((t1 - t0)) s"; fi
# No BFQ on the VM's NVMe disk: io.weight, with blkio's 10..1000 mapped onto 1..10000 (crun).
eq "--blkio-weight sets io.weight" "default $((1 + (300 - 10) * 9999 / 990))" "$(run --blkio-weight 300 $IMG cat /sys/fs/cgroup/io.weight)"
has "--blkio-weight-device sets a device's io.weight" "$dev $((1 + (200 - 10) * 9999 / 990))" "$(run --blkio-weight-device /dev/nvme0n1:200 $IMG cat /sys/fs/cgroup/io.weight)"
out=$(berth run --rm --blkio-weight 5 $IMG true 2>&1); rc=$?
eq "--blkio-weight 5 exits 125" 125 "$rc"
has "--blkio-weight 5 says why" "Range of blkio weight is from 10 to 1000" "$out"
out=$(berth run --rm --device-read-bps nvme0n1:1mb $IMG true 2>&1); rc=$?
eq "a device path outside /dev exits 125" 125 "$rc"
has "a device path outside /dev says why" "bad format for device path: nvme0n1:1mb" "$out"

echo "== devices"
out=$(run $IMG sh -c "mknod /dev/blk b ${dev%:*} ${dev#*:} && head -c 1 /dev/blk" 2>&1)
has "an unlisted block device cannot be read" "Operation not permitted" "$out"
eq "--device is readable" 1 "$(run --device /dev/nvme0n1:/dev/disk $IMG sh -c 'head -c 1 /dev/disk | wc -c')"
out=$(run $IMG sh -c 'echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c')
has "default devices work" "null-ok" "$out"
# A char device of an unregistered major: opening it fails with ENXIO when the device cgroup
# (v2: the BPF program) lets the open through, and with EPERM when the rule refuses it.
mknod /tmp/cgv2-exp c 242 0
out=$(run --device /tmp/cgv2-exp:/dev/exp:r $IMG sh -c 'echo x > /dev/exp' 2>&1)
has "--device ...:r refuses writes" "Operation not permitted" "$out"
out=$(run --device /tmp/cgv2-exp:/dev/exp:r $IMG sh -c 'cat /dev/exp' 2>&1)
has "--device ...:r allows reads" "No such device or address" "$out"
out=$(run --device /tmp/cgv2-exp:/dev/exp:rw $IMG sh -c 'echo x > /dev/exp' 2>&1)
has "--device ...:rw allows writes" "No such device or address" "$out"
rm -f /tmp/cgv2-exp

echo "== freeze"
id=$(berth run -d --name frz $IMG sh -c 'while :; do date +%s%N > /tmp/tick; sleep 0.05; done')
true_ "pause" berth pause frz
eq "cgroup.events says frozen" "frozen 1" "$(grep frozen $CG/berth/$id/cgroup.events)"
eq "inspect says paused" paused "$(berth inspect -f '{{.State.Status}}' frz)"
a=$(cat /proc/$(cpid frz)/root/tmp/tick); sleep 1; b=$(cat /proc/$(cpid frz)/root/tmp/tick)
eq "a frozen container makes no progress" "$a" "$b"
true_ "unpause" berth unpause frz
eq "cgroup.events says thawed" "frozen 0" "$(grep frozen $CG/berth/$id/cgroup.events)"
sleep 1; c=$(cat /proc/$(cpid frz)/root/tmp/tick)
if [ "$c" != "$b" ]; then ok "a thawed container runs again"; else bad "a thawed container runs again: tick stuck at $c"; fi
berth rm -f frz >/dev/null

echo "== update"
id=$(berth run -d --name upd -m 64m --pids-limit 10 $IMG sleep 300)
true_ "update memory, swap, cpus, shares, cpuset, pids, blkio weight, restart" \
  berth update --memory 96m --memory-swap 200m --cpus 0.5 --cpu-shares 512 --cpuset-cpus 0 --pids-limit 20 --blkio-weight 500 --restart on-failure:3 upd
eq "memory.max updated" 100663296 "$(cat $CG/berth/$id/memory.max)"
eq "memory.swap.max updated" $((200 * 1048576 - 96 * 1048576)) "$(cat $CG/berth/$id/memory.swap.max)"
eq "cpu.max updated" "50000 100000" "$(cat $CG/berth/$id/cpu.max)"
eq "cpu.weight updated" 20 "$(cat $CG/berth/$id/cpu.weight)"
eq "cpuset.cpus updated" 0 "$(cat $CG/berth/$id/cpuset.cpus)"
eq "pids.max updated" 20 "$(cat $CG/berth/$id/pids.max)"
eq "io.weight updated" "default $((1 + (500 - 10) * 9999 / 990))" "$(cat $CG/berth/$id/io.weight)"
eq "inspect shows the new memory" 100663296 "$(berth inspect -f '{{.HostConfig.Memory}}' upd)"
eq "inspect shows the new restart policy" "on-failure 3" "$(berth inspect -f '{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}' upd)"
true_ "update --pids-limit -1" berth update --pids-limit -1 upd
eq "pids.max back to max" max "$(cat $CG/berth/$id/pids.max)"
out=$(berth update --memory 300m upd 2>&1); rc=$?
eq "memory above memory+swap without --memory-swap exits 1" 1 "$rc"
has "and says docker's words" "Memory limit should be smaller than already set memoryswap limit" "$out"
out=$(berth update upd 2>&1); rc=$?
eq "update without flags exits 1" 1 "$rc"
berth rm -f upd >/dev/null
out=$(berth update --memory 64m nosuch 2>&1); rc=$?
eq "update of a missing container exits 1" 1 "$rc"

echo "== berth-runc without cgroupsPath goes beside the caller"
b=/tmp/bundle
mkdir -p $b/rootfs/bin $b/rootfs/proc
cp /bin/busybox $b/rootfs/bin/
for x in sh sleep cat; do ln -s busybox $b/rootfs/bin/$x; done
cat > $b/config.json <<'JSON'
{"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":0,"gid":0},"args":["sleep","300"],"env":["PATH=/bin"],"cwd":"/"},
 "root":{"path":"rootfs"},"mounts":[{"destination":"/proc","type":"proc","source":"proc"}],
 "linux":{"namespaces":[{"type":"pid"},{"type":"mount"}],"resources":{"memory":{"limit":67108864},"pids":{"limit":50}}}}
JSON
true_ "berth-runc create" berth-runc create --bundle $b rc1 </dev/null >/dev/null 2>/tmp/rc1.err
cat /tmp/rc1.err
true_ "berth-runc start" berth-runc start rc1
rpid=$(berth-runc state rc1 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
eq "runc container cgroup is beside the caller's" "0::/test.slice/rc1" "$(cat /proc/$rpid/cgroup)"
eq "its memory limit" 67108864 "$(cat $CG/test.slice/rc1/memory.max)"
eq "the caller's cgroup got no controllers" "" "$(cat $CG/test.slice/session.scope/cgroup.subtree_control)"
has "its parent (no processes) delegates them" "memory" "$(cat $CG/test.slice/cgroup.subtree_control)"
true_ "berth-runc pause" berth-runc pause rc1
eq "runc pause freezes it" "frozen 1" "$(grep frozen $CG/test.slice/rc1/cgroup.events)"
true_ "berth-runc resume" berth-runc resume rc1
true_ "berth-runc update" berth-runc update --memory 100663296 rc1
eq "runc update sets memory.max" 100663296 "$(cat $CG/test.slice/rc1/memory.max)"
true_ "berth-runc delete -f" berth-runc delete -f rc1
true_ "runc cgroup removed" test ! -e "$CG/test.slice/rc1"

echo "== the cgroups crate's test binaries"
# With no controller delegated from the root (like the hybrid host's cgroup2 mount),
# v2_unified.rs also checks the missing-controller errors.
for d in $(find $CG -mindepth 1 -type d | sort -r) $CG; do
  for c in $(cat $d/cgroup.subtree_control); do echo "-$c" > $d/cgroup.subtree_control; done
done
eq "no controllers delegated from the root" "" "$(cat $CG/cgroup.subtree_control)"
for t in /tests/bin/*; do
  out=$("$t" --test-threads 1 --nocapture 2>&1); rc=$?
  if [ "$rc" != 0 ]; then
    # One more run of a failing binary: the freeze check failed once in about ten VM runs under
    # TCG (cause not found yet); its first output stays on the console for the record.
    echo "$out"
    echo "RETRY - ${t##*/} failed (output above); running it once more"
    out=$("$t" --test-threads 1 --nocapture 2>&1); rc=$?
  fi
  # All of a failing binary's output (for the assertion's message), else a line per test.
  if [ "$rc" != 0 ]; then echo "$out"; else echo "$out" | grep -E '^test |skipped'; fi
  res=$(echo "$out" | grep '^test result:' | tail -1)
  p=$(echo "$res" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
  f=$(echo "$res" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
  if [ -z "$p" ] || [ -z "$f" ]; then
    bad "${t##*/}: no test result (exit $rc)"
  else
    pass=$((pass + p)); fail=$((fail + f))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then bad "${t##*/}: exit $rc"; fi
    echo "${t##*/}: $p passed, $f failed"
  fi
done

echo "== cleanup"
eq "no containers left" "" "$(berth ps -aq)"
eq "no cgroups left under /berth" "" "$(cd $CG/berth 2>/dev/null && find . -mindepth 1 -type d)"
eq "no cgroups left in test.slice" "session.scope" "$(cd $CG/test.slice && find . -mindepth 1 -type d | sed 's|^\./||')"
