/*
 * A 512-byte BIOS boot sector: the smallest real disk image, so a test can boot a guest from an image in
 * Ferry's image store (the disk path, not -kernel). It prints one line on COM1 and halts.
 */
    .code16
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov $message, %si
next:
    lodsb
    test %al, %al
    jz done
    mov %al, %bl
    mov $0x3fd, %dx          /* line status: wait until the transmitter is empty */
wait:
    in %dx, %al
    test $0x20, %al
    jz wait
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    jmp next
done:
    hlt
    jmp done
message:
    .asciz "ferry-disk-guest booted from its disk\r\n"
    .org 510
    .word 0xaa55
