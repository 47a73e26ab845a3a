/*
 * virtio-net (legacy, QEMU's transitional virtio-net-pci) under the NIC layer (nic.h).
 *
 * The driver keeps no ring index of its own: both queues give slot s of the avail ring to buffer s % BUFFERS once,
 * at start, and the device uses buffers in order (QEMU's virtio-net does), so the avail and used indexes in the
 * rings say everything. A stale copy of a page after a migration (README) cannot leave a private index disagreeing
 * with the rings; what it can do to the device is caught by net.c's heartbeat.
 */
#include "nic.h"
#include "virtio.h"

#define VIRTIO_NET_F_MAC (1u << 5)
#define NET_HDR_LEN 10u                 /* legacy virtio_net_hdr without mergeable RX buffers; all zero = no offloads */
#define RX_QUEUE 0
#define TX_QUEUE 1
#define RX_BUFFERS 32u                  /* powers of two, so they divide the ring size */
#define TX_BUFFERS 64u                  /* more than RX: after a host stall QEMU delivers a burst before it completes our sends */
#define BUFFER_BYTES 2048u              /* header + the largest frame a tap without offloads delivers (1514) */

static u8 rx_ring[VIRTQ_MEM_BYTES] __attribute__((aligned(4096)));
static u8 tx_ring[VIRTQ_MEM_BYTES] __attribute__((aligned(4096)));
static u8 rx_buffers[RX_BUFFERS][BUFFER_BYTES] __attribute__((aligned(4096)));
static u8 tx_buffers[TX_BUFFERS][BUFFER_BYTES] __attribute__((aligned(4096)));

static struct {
    u16 io;
    struct virtq rx, tx;
    u16 tx_used_at_heartbeat;
} dev;

static int find(u8 mac[6])
{
    u32 slot = 0;
    dev.io = virtio_pci_find(VIRTIO_PCI_NET, &slot);
    if (!dev.io) return 0;
    for (u32 i = 0; i < 6u; i++) mac[i] = inb(dev.io + VIRTIO_DEVICE_CONFIG + i);
    return 1;
}

static void stop(void) { virtio_reset(dev.io); }

static int start(void)
{
    virtio_start(dev.io, VIRTIO_NET_F_MAC);
    if (!virtq_setup(&dev.rx, dev.io, RX_QUEUE, rx_ring) || !virtq_setup(&dev.tx, dev.io, TX_QUEUE, tx_ring)
        || dev.rx.size < RX_BUFFERS || dev.tx.size < TX_BUFFERS) {
        virtio_reset(dev.io);
        return 0;
    }
    for (u32 i = 0; i < RX_BUFFERS; i++) {
        dev.rx.desc[i].addr = (u32)rx_buffers[i];
        dev.rx.desc[i].len = BUFFER_BYTES;
        dev.rx.desc[i].flags = VRING_DESC_F_WRITE;
    }
    for (u32 i = 0; i < TX_BUFFERS; i++) dev.tx.desc[i].addr = (u32)tx_buffers[i];
    for (u32 s = 0; s < dev.rx.size; s++) dev.rx.avail->ring[s] = (u16)(s % RX_BUFFERS);
    for (u32 s = 0; s < dev.tx.size; s++) dev.tx.avail->ring[s] = (u16)(s % TX_BUFFERS);
    dev.rx.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
    dev.tx.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
    dev.rx.avail->idx = RX_BUFFERS;     /* every RX buffer posted */
    dev.tx_used_at_heartbeat = 0;
    virtio_driver_ok(dev.io);
    virtq_kick(&dev.rx);                /* QEMU holds back frames that came while no buffer was posted */
    return 1;
}

static u8 *tx_frame(void)
{
    u16 next = dev.tx.avail->idx;
    if ((u16)(next - dev.tx.used->idx) >= TX_BUFFERS) return 0;
    u8 *buffer = tx_buffers[next % TX_BUFFERS];
    memset(buffer, 0, NET_HDR_LEN);
    return buffer + NET_HDR_LEN;
}

static void tx_send(u32 frame_len)
{
    u16 next = dev.tx.avail->idx;
    dev.tx.desc[next % TX_BUFFERS].len = NET_HDR_LEN + frame_len;
    compiler_barrier();
    dev.tx.avail->idx = (u16)(next + 1u);
    virtq_kick(&dev.tx);
}

static int receive(u32 budget, nic_rx_handler handle, const struct probe_status *status)
{
    int received = 0;
    for (; budget; budget--) {
        u16 seen = (u16)(dev.rx.avail->idx - RX_BUFFERS);  /* frames before this one were handled and their buffers posted again */
        u16 used = dev.rx.used->idx;
        if (used == seen) break;
        volatile struct vring_used_elem *element = &dev.rx.used->ring[seen % dev.rx.size];
        u32 id = element->id, len = element->len;
        if ((u16)(used - seen) > RX_BUFFERS || id != seen % RX_BUFFERS) return -1;   /* not the ring we gave it */
        if (len > NET_HDR_LEN && len <= BUFFER_BYTES) handle(rx_buffers[id] + NET_HDR_LEN, len - NET_HDR_LEN, status);
        compiler_barrier();
        dev.rx.avail->idx = (u16)(seen + 1u + RX_BUFFERS);    /* the buffer goes back */
        received++;
    }
    if (received) virtq_kick(&dev.rx);
    return received;
}

static int tx_stalled(void)
{
    u16 used = dev.tx.used->idx;
    int stalled = dev.tx.avail->idx != used && used == dev.tx_used_at_heartbeat;
    dev.tx_used_at_heartbeat = used;
    return stalled;
}

const struct nic_driver virtio_net_driver = {
    .model = "virtio", .find = find, .start = start, .stop = stop,
    .tx_frame = tx_frame, .tx_send = tx_send, .receive = receive, .tx_stalled = tx_stalled,
};
