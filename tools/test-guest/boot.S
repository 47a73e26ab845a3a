/* Multiboot v1 entry for the Ferry test guest. QEMU's -kernel loads it in 32-bit protected mode
 * with flat segments, interrupts off, EAX = 0x2BADB002 and EBX = the multiboot info address. */
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00000003          /* page-align modules, want memory info */
    .set MB_CHECKSUM, -(MB_MAGIC + MB_FLAGS)

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long MB_CHECKSUM

    .section .bss
    .align 16
stack_bottom:
    .skip 16384
stack_top:

    .section .text
    .global _start
_start:
    cli
    mov $stack_top, %esp
    push %ebx                          /* multiboot info */
    push %eax                          /* magic */
    call kmain
1:  hlt
    jmp 1b
    .section .note.GNU-stack, "", @progbits
