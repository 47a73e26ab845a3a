/* PCI configuration mechanism #1: the config space of the functions on bus 0, through I/O ports 0xcf8/0xcfc. */
#include "pci.h"

#define PCI_ADDRESS 0xcf8
#define PCI_DATA 0xcfc

static u32 pci_read32(u32 slot, u8 offset)
{
    outl(PCI_ADDRESS, 0x80000000u | (slot << 8) | (offset & 0xfcu));
    return inl(PCI_DATA);
}

static void pci_write16(u32 slot, u8 offset, u16 value)
{
    outl(PCI_ADDRESS, 0x80000000u | (slot << 8) | (offset & 0xfcu));
    outw(PCI_DATA + (offset & 2u), value);
}

/*
 * Bus 0 only: QEMU's pc machine puts every device there, and scanning 256 buses would cost thousands of port
 * accesses (VM exits) at boot for nothing.
 */
int pci_find(u16 vendor, u16 device, u32 *slot, u32 *found, u32 *bar0)
{
    for (; *slot < 256u; (*slot)++) {
        u32 s = *slot;
        u32 id = pci_read32(s, 0);
        if ((s & 7u) == 0 && (id & 0xffffu) == 0xffffu) { *slot |= 7u; continue; }   /* no device: skip its functions */
        if ((s & 7u) == 0 && !(pci_read32(s, 0x0c) & 0x00800000u)) *slot |= 7u;        /* single-function */
        if (id != ((u32)device << 16 | vendor)) continue;
        (*slot)++;
        *found = s;
        *bar0 = pci_read32(s, 0x10);
        return 1;
    }
    return 0;
}

void pci_enable(u32 slot, u16 command_bits)
{
    pci_write16(slot, 0x04, (u16)(pci_read32(slot, 0x04) | command_bits));
}
