#!/usr/bin/env bash
# Builds the Ferry test guest (a multiboot v1 ELF32 kernel) with the machine's gcc and ld.
# Output: tools/test-guest/out/ferry-test-guest.elf (its path is the last line printed) and
# tools/test-guest/out/ferry-disk-guest.img (a boot-sector disk image). Idempotent: does nothing when the outputs are
# newer than the sources.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/out"
elf="$out/ferry-test-guest.elf"
img="$out/ferry-disk-guest.img"
c_files=(kmain.c pci.c virtio.c virtio_net.c e1000.c configdrive.c net.c mem.c)
sources=("$here/boot.S" "${c_files[@]/#/$here/}" "$here/guest.h" "$here/pci.h" "$here/virtio.h" "$here/nic.h" "$here/configdrive.h" "$here/link.ld"
         "$here/bootsector.S" "$here/build.sh")

up_to_date=1
[[ -f "$elf" && -f "$img" ]] || up_to_date=0
if (( up_to_date )); then
  for s in "${sources[@]}"; do [[ "$s" -nt "$elf" || "$s" -nt "$img" ]] && up_to_date=0; done
fi
if (( up_to_date )); then echo "$elf"; exit 0; fi

mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cflags=(-m32 -march=i686 -O2 -ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables
        -ffixed-ebx -nostdlib -nostdinc -Wall -Wextra -Werror -std=gnu11)
gcc "${cflags[@]}" -c "$here/boot.S" -o "$tmp/boot.o"
objects=("$tmp/boot.o")                 # first: the multiboot header must sit in the image's first 8 KiB
for c in "${c_files[@]}"; do
  gcc "${cflags[@]}" -c "$here/$c" -o "$tmp/${c%.c}.o"
  objects+=("$tmp/${c%.c}.o")
done
ld -m elf_i386 -nostdlib -static --no-warn-rwx-segments -T "$here/link.ld" -o "$tmp/ferry-test-guest.elf" "${objects[@]}"
gcc -m32 -c "$here/bootsector.S" -o "$tmp/bootsector.o"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$tmp/ferry-disk-guest.img" "$tmp/bootsector.o"
mv -f "$tmp/ferry-test-guest.elf" "$elf"
mv -f "$tmp/ferry-disk-guest.img" "$img"
echo "$elf"
