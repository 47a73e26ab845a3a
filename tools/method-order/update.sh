#!/usr/bin/env bash
# Regenerates src/Ferry.Host/method-order.txt from two runs of the distributed moves bench (README.md here; ~5 min, root:
# it reads other processes' pagemaps and sets the disk's read-ahead to 0 for the second run, restoring it after).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-method-order-XXXXXX")
bench=(./ferry bench --distributed --only startup,live,cold,concurrent)

# 1. Under the JIT (FERRY_BINARY empty): every method a role runs is compiled, and each role process lists them.
echo "method-order: JIT run (lists in $work/jit)" >&2
mkdir -p "$work/jit"
FERRY_BINARY= FERRY_JIT_METHOD_LIST_DIR="$work/jit" "${bench[@]}" > "$work/jit.log"

# 2. Natively, with the binary out of the page cache and no read-ahead: a page is resident in a process only when some
# process touched it (the kernel's fault-around maps only cached pages), so each role's pages name the methods it ran
# that the JIT's list lacks (the runtime's own, native-only paths).
binary=$(./ferry publish | tail -1)
device=$(lsblk -no pkname "$(findmnt -no SOURCE -T "$binary")" 2>/dev/null || true)
[ -n "$device" ] || device=$(basename "$(findmnt -no SOURCE -T "$binary")")
read_ahead=/sys/block/$device/queue/read_ahead_kb
saved=$(cat "$read_ahead")
trap 'echo "$saved" > "$read_ahead"' EXIT
echo 0 > "$read_ahead"
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$binary"
echo "method-order: native run (pages in $work/pages)" >&2
FERRY_BINARY="$binary" FERRY_BENCH_MEMORY_DIR="$work/pages" "${bench[@]}" > "$work/native.log"
echo "$saved" > "$read_ahead"

python3 tools/method-order/method-order.py "$work/jit" "$binary.dbg" src/Ferry.Host/obj/Release/net10.0/linux-x64/native/ferry.ilc.rsp \
  "$work/pages" > src/Ferry.Host/method-order.txt
rm -rf "$work"
echo "method-order: src/Ferry.Host/method-order.txt written; ./ferry publish lays the code out by it" >&2
