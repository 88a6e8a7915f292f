#!/usr/bin/env bash
# The report benchmark's corpus: one recording per event class, each made four ways,
#   tc-v6.dat   trace-cmd record --file-version 6   (raw pages)
#   tc-v7.dat   trace-cmd record                    (trace-cmd's default: v7, zstd)
#   wp-v6.dat   wasmprobe record                    (v6)
#   wp-v7.dat   wasmprobe record --file-version 7   (v7, uncompressed)
# into OUT/<class>/ (default target/bench-corpus, never in git). Every recording is
# system-wide: the recorder starts, a load that makes the class fire runs to its end, the
# recorder gets SIGINT. trace-cmd runs in the private mount namespace of trace-cmd-ns.sh.
#   tests/bench/corpus.sh [OUT] [CLASS...]      e.g. tests/bench/corpus.sh target/c sched net
# SCALE=N multiplies every load (default 1: about 0.2-1.5 M events a class).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
OUT=${1:-target/bench-corpus}; shift || true
SCALE=${SCALE:-1}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
WP=$root/target/release/wasmprobe
[ -x "$WP" ] || cargo build --release -q -p wasmprobe
T=/sys/kernel/tracing
scratch=$(mktemp -d /tmp/wp-corpus.XXXXXX)
UPGROUP=wpbench_up            # not wasmprobe_*: made and removed by this script
httpd=
cleanup() {
  [ -n "$httpd" ] && kill "$httpd" 2>/dev/null || true
  echo "-:$UPGROUP/statx" >> $T/uprobe_events 2>/dev/null || true
  echo "-:$UPGROUP/getxattr" >> $T/uprobe_events 2>/dev/null || true
  rm -rf "$scratch"
  echo 1 > $T/tracing_on        # trace-cmd leaves it at 0 in the top instance
}
trap cleanup EXIT

# --- loads: each makes its class fire, and ends by itself ------------------------------------
n() { echo $(( $1 * SCALE )); }
load_sched() { perf bench sched pipe -l "$(n 60000)" >/dev/null; }
load_fs() { for _ in $(seq "$(n 3)"); do ls -lR /usr/share/doc /usr/lib/python3* >/dev/null 2>&1 || true; done; }
load_irq() { dd if=/dev/zero of="$scratch/f" bs=64k count="$(n 4000)" oflag=direct status=none; load_udp 60000; }
# Two sleepers, 50 us a sleep: hrtimer start, expire, cancel.
load_timer() {
  local p=() _
  for _ in 1 2; do python3 -c "import time
for _ in range($(n 40000)): time.sleep(0.00005)" & p+=($!); done; wait "${p[@]}"
}
# Small UDP datagrams over loopback: a softirq and the net events per packet.
load_udp() {
  python3 -c "import socket
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a = r.getsockname()
for i in range($(n $1)):
    s.sendto(b'x' * 64, a); r.recv(128)"
}
load_kmem() { load_fs; }
# Work items: each write to a pty's master queues the tty's flush work (about 2 events a
# write), plus what writing back files queues.
load_workqueue() {
  load_write
  python3 -c "import os, pty, tty
m, s = pty.openpty(); tty.setraw(s)
for _ in range($(n 60000)):
    os.write(m, b'x'); os.read(s, 16)"
}
load_syscalls() { load_fs; }
load_write() {
  for i in $(seq "$(n 8)"); do
    dd if=/dev/urandom of="$scratch/w$i" bs=1M count=16 status=none; sync
  done; rm -f "$scratch"/w*; sync
}
# Many small files written, synced and removed: the dirtying and writing back of each inode
# and page (a few large files give only a few thousand writeback events).
load_writeback() {
  load_write
  python3 -c "import os
d = '$scratch'
for i in range($(n 10000)):
    with open(f'{d}/s{i}', 'wb') as f: f.write(b'x' * 4096)
os.sync()
for i in range($(n 10000)): os.unlink(f'{d}/s{i}')
os.sync()"
}
load_block() { dd if=/dev/zero of="$scratch/b" bs=64k count="$(n 4000)" oflag=direct status=none; load_write; }
load_net() { for _ in $(seq "$(n 20)"); do curl -s -o /dev/null "http://127.0.0.1:$port/big"; done; load_udp 50000; }
load_signal() {
  python3 -c "import os, signal
signal.signal(signal.SIGUSR1, lambda *a: None)
for _ in range($(n 150000)): os.kill(os.getpid(), signal.SIGUSR1)"
}
load_task() {
  python3 -c "import os
for _ in range($(n 20000)):
    p = os.fork()
    if p == 0: os._exit(0)
    os.waitpid(p, 0)"
}
load_power() { for _ in $(seq "$(n 400)"); do sleep 0.003; done; }
load_uprobes() { load_fs; load_fs; }

# class  events (-e ...)  load
CLASSES="
sched      sched:sched_switch,sched:sched_wakeup,sched:sched_waking,sched:sched_wakeup_new,sched:sched_migrate_task  sched
irq        irq                                                  irq
timer      timer                                                timer
kmem       kmem:kmalloc,kmem:kfree,kmem:kmem_cache_alloc,kmem:kmem_cache_free,kmem:mm_page_alloc,kmem:mm_page_free  kmem
workqueue  workqueue                                            workqueue
raw_syscalls raw_syscalls                                       syscalls
syscalls   syscalls                                             syscalls
block      block                                                block
net        net                                                  net
signal     signal                                               signal
task       task,sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit  task
writeback  writeback                                            writeback
power      power:cpu_idle,power:cpu_idle_miss                   power
uprobes    $UPGROUP                                             uprobes
"

# --- the peer of the net load: a loopback HTTP server with a 4 MiB file ----------------------
head -c 4M /dev/urandom > "$scratch/big"
port=$(( 20000 + RANDOM % 20000 ))
(cd "$scratch" && exec python3 -m http.server -b 127.0.0.1 "$port" >/dev/null 2>&1) &
httpd=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/big" && break; sleep 0.1; done

# --- uprobes with strings: libc's statx(dirfd, path, ...) and getxattr(path, name, ...) -----
libc=$(ldd /bin/ls | awk '/libc.so/{print $3}')
echo "p:$UPGROUP/statx $libc:0x$(nm -D "$libc" | awk '$3=="statx@@GLIBC_2.28"{print $1}') path=+0(%si):ustring flags=%cx:x32" >> $T/uprobe_events
echo "p:$UPGROUP/getxattr $libc:0x$(nm -D "$libc" | awk '$3 ~ /^getxattr@@/{print $1}') path=+0(%di):ustring name=+0(%si):ustring" >> $T/uprobe_events

# trace-cmd records in the top instance: wait while another trace-cmd record runs there.
wait_top() { while pgrep -x trace-cmd >/dev/null; do sleep 2; done; }

# record TOOL FILE EVENTS LOAD
record() {
  local tool=$1 file=$2 events=$3 load=$4 args=() e pid
  for e in ${events//,/ }; do args+=(-e "$e"); done
  rm -f "$file"
  case $tool in
    tc6|tc7)
      wait_top
      local v=(); [ "$tool" = tc6 ] && v=(--file-version 6)
      tests/bench/trace-cmd-ns.sh record "${v[@]}" "${args[@]}" -o "$file" >"$file.log" 2>&1 & pid=$! ;;
    wp6|wp7)
      local v=(); [ "$tool" = wp7 ] && v=(--file-version 7)
      "$WP" record "${v[@]}" "${args[@]}" -o "$file" >"$file.log" 2>&1 & pid=$! ;;
  esac
  sleep 1.5
  "load_$load"
  sleep 0.3
  kill -INT "$pid"; wait "$pid" || true
  [ -s "$file" ] || { echo "corpus: $tool recorded nothing for $file:"; cat "$file.log"; exit 1; }
}

want=" $* "
echo "$CLASSES" | while read -r class events load; do
  [ -n "$class" ] || continue
  [ $# -eq 0 ] || [[ $want == *" $class "* ]] || continue
  d=$OUT/$class; mkdir -p "$d"
  for tool in tc6 tc7 wp6 wp7; do
    f=$d/${tool:0:2}-v${tool:2}.dat
    # trace-cmd writes the saved_cmdlines it sized a moment before; when a fork storm
    # changes them meanwhile its file is cut short and its own report prints nothing: again.
    for try in 1 2 3; do
      record "$tool" "$f" "$events" "$load"
      [ "$(trace-cmd report -i "$f" 2>/dev/null | head -c 100 | wc -l)" -gt 0 ] && break
      echo "corpus: $f: trace-cmd cannot read it back (try $try)"
    done
    printf '%-12s %-10s %8d KiB\n' "$class" "${f##*/}" "$(( $(stat -c %s "$f") / 1024 ))"
  done
done
