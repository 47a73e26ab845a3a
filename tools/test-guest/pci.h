/* PCI configuration mechanism #1 on bus 0: device discovery for the test guest's drivers. */
#ifndef FERRY_PCI_H
#define FERRY_PCI_H

#include "guest.h"

#define PCI_COMMAND_IO 0x1u
#define PCI_COMMAND_MEMORY 0x2u
#define PCI_COMMAND_MASTER 0x4u         /* bus mastering: the device may DMA into our rings */

/*
 * The next function with this vendor and device id on PCI bus 0 from *slot on (start at 0), slot = device << 3 |
 * function: 1 and its slot in *found and its BAR0 (as the firmware set it) in *bar0, or 0 when there is none. *slot
 * is left after it, so calling again finds the next one. Enables nothing: see pci_enable.
 */
int pci_find(u16 vendor, u16 device, u32 *slot, u32 *found, u32 *bar0);

/* Sets these PCI_COMMAND bits of a function. */
void pci_enable(u32 slot, u16 command_bits);

#endif
