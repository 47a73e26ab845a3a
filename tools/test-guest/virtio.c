/* Legacy virtio PCI transport: device discovery, queue set-up, polling. */
#include "pci.h"
#include "virtio.h"

/* Legacy register offsets in BAR0 */
#define VIRTIO_HOST_FEATURES 0
#define VIRTIO_GUEST_FEATURES 4
#define VIRTIO_QUEUE_PFN 8
#define VIRTIO_QUEUE_NUM 12
#define VIRTIO_QUEUE_SEL 14
#define VIRTIO_STATUS 18

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4

/* Legacy registers need an I/O BAR the firmware placed; I/O space and bus mastering (DMA into our rings) get enabled. */
u16 virtio_pci_find(u16 device_id, u32 *slot)
{
    u32 found, bar0;
    while (pci_find(VIRTIO_PCI_VENDOR, device_id, slot, &found, &bar0)) {
        if (!(bar0 & 1u) || (bar0 & ~3u) == 0) continue;
        pci_enable(found, PCI_COMMAND_IO | PCI_COMMAND_MASTER);
        return (u16)(bar0 & ~3u);
    }
    return 0;
}

void virtio_reset(u16 io)
{
    outb(io + VIRTIO_STATUS, 0);
    (void)inb(io + VIRTIO_STATUS);      /* QEMU resets synchronously; the read makes sure the write landed */
}

u32 virtio_start(u16 io, u32 wanted_features)
{
    virtio_reset(io);                   /* the firmware may have driven it (SeaBIOS probes virtio-blk) */
    outb(io + VIRTIO_STATUS, STATUS_ACKNOWLEDGE);
    outb(io + VIRTIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    u32 features = inl(io + VIRTIO_HOST_FEATURES) & wanted_features;
    outl(io + VIRTIO_GUEST_FEATURES, features);
    return features;
}

void virtio_driver_ok(u16 io)
{
    outb(io + VIRTIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
}

static u32 align_page(u32 n) { return (n + 4095u) & ~4095u; }

int virtq_setup(struct virtq *q, u16 io, u16 index, void *mem)
{
    outw(io + VIRTIO_QUEUE_SEL, index);
    u16 size = inw(io + VIRTIO_QUEUE_NUM);
    if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1u))) return 0;
    memset(mem, 0, VIRTQ_MEM_BYTES);    /* the device reads a zero used index as "nothing used yet" */
    u32 base = (u32)mem;                /* no paging: the address is the physical address */
    q->io = io;
    q->index = index;
    q->size = size;
    q->desc = (volatile struct vring_desc *)base;
    q->avail = (volatile struct vring_avail *)(base + 16u * size);
    /* legacy layout: the used ring starts on the next 4096 boundary after the avail ring (flags, idx, ring, used_event) */
    q->used = (volatile struct vring_used *)(base + align_page(16u * size + 6u + 2u * size));
    outl(io + VIRTIO_QUEUE_PFN, base >> 12);
    return 1;
}

int virtq_wait_idle(const struct virtq *q, u32 ms)
{
    u32 waited = 0, budget = ms * (PIT_HZ / 1000u);
    u16 last = pit_read();
    while (q->used->idx != q->avail->idx) {
        u16 now = pit_read();
        waited += (u16)(last - now);
        last = now;
        if (waited > budget) return 0;
    }
    return 1;
}
