/*
 * Legacy virtio over PCI (virtio 0.9.5): the registers in I/O BAR0 that QEMU's transitional virtio-*-pci devices
 * keep on the pc machine, and split virtqueues polled through their used ring (no interrupts).
 */
#ifndef FERRY_VIRTIO_H
#define FERRY_VIRTIO_H

#include "guest.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_NET 0x1000           /* legacy device ids */
#define VIRTIO_PCI_BLK 0x1001

#define VIRTIO_DEVICE_CONFIG 20         /* device-specific config in BAR0 while MSI-X is off (we never enable it) */

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2            /* the device writes this buffer */
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vring_desc { u64 addr; u32 len; u16 flags; u16 next; };
struct vring_avail { u16 flags; u16 idx; u16 ring[]; };
struct vring_used_elem { u32 id; u32 len; };
struct vring_used { u16 flags; u16 idx; struct vring_used_elem ring[]; };

/* The largest queue QEMU offers (rx_queue_size/queue-size ≤ 1024) fits in this much memory in the legacy layout. */
#define VIRTQ_MAX_SIZE 1024u
#define VIRTQ_MEM_BYTES 32768u

struct virtq {
    u16 io;                             /* the device's BAR0 */
    u16 index;                          /* queue number */
    u16 size;                           /* ring entries: the device decides (legacy), a power of two */
    volatile struct vring_desc *desc;
    volatile struct vring_avail *avail;
    volatile struct vring_used *used;
};

/* The next device with this legacy id on PCI bus 0 from *slot on (start at 0); 0 when there is none. I/O and bus mastering get enabled. */
u16 virtio_pci_find(u16 device_id, u32 *slot);

void virtio_reset(u16 io);              /* the device forgets its queues and stops touching our memory */
u32 virtio_start(u16 io, u32 wanted_features);   /* reset, acknowledge, negotiate; returns the features agreed */
void virtio_driver_ok(u16 io);

/* Zeroes mem (VIRTQ_MEM_BYTES, 4096-aligned, below 4 MiB) and hands it to the device as queue `index`. 0 if the device has no such queue. */
int virtq_setup(struct virtq *q, u16 io, u16 index, void *mem);

static inline void virtq_kick(const struct virtq *q) { outw(q->io + 16, q->index); }

/* Polls until the device has used everything made available, for at most about `ms` milliseconds. */
int virtq_wait_idle(const struct virtq *q, u32 ms);

#endif
