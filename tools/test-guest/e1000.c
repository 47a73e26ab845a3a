/*
 * Intel 82540EM (QEMU's `-device e1000`, PCI 8086:100e) under the NIC layer (nic.h): registers in memory BAR0,
 * legacy RX and TX descriptor rings, polled, no interrupts (none is ever unmasked).
 *
 * Like the virtio driver it keeps no ring index of its own: the device's head and tail registers are the state.
 * RX: the device fills descriptors from RDH up to, not including, RDT; the driver keeps RDT on the last descriptor it
 * handled, so the next one to look at is RDT + 1 and the ones done are those up to RDH. TX: the driver writes the
 * descriptor at TDT and moves TDT on; the device sends up to TDT and moves TDH on. Descriptor i always points at
 * buffer i. So a stale copy of a ring page after a migration (README) cannot leave an index disagreeing with the
 * device (at worst an old frame is answered again), and the device's registers are migrated by QEMU.
 */
#include "nic.h"
#include "pci.h"

#define E1000_VENDOR 0x8086
#define E1000_82540EM 0x100e

/* Registers (offsets in BAR0) and their bits: Intel's 8254x software developer's manual, section 13 */
#define CTRL 0x0000
#define CTRL_SLU (1u << 6)              /* set link up */
#define ICR 0x00c0
#define IMC 0x00d8
#define RCTL 0x0100
#define RCTL_EN (1u << 1)
#define RCTL_BAM (1u << 15)             /* broadcasts: ARP requests */
#define RCTL_SECRC (1u << 26)           /* strip the CRC: lengths are the frame's */
#define TCTL 0x0400
#define TCTL_EN (1u << 1)
#define TCTL_PSP (1u << 3)              /* pad short frames */
#define TCTL_CT (0x0fu << 4)            /* collision threshold, the manual's value */
#define TCTL_COLD (0x40u << 12)         /* collision distance, full duplex */
#define TIPG 0x0410
#define TIPG_82540 (10u | 8u << 10 | 6u << 20)
#define RDBAL 0x2800
#define RDBAH 0x2804
#define RDLEN 0x2808
#define RDH 0x2810
#define RDT 0x2818
#define TDBAL 0x3800
#define TDBAH 0x3804
#define TDLEN 0x3808
#define TDH 0x3810
#define TDT 0x3818
#define RAL0 0x5400
#define RAH0 0x5404

#define RX_DD 0x01u                     /* descriptor done */
#define RX_EOP 0x02u                    /* the frame ends in this buffer */
#define TX_CMD_EOP 0x01u
#define TX_CMD_IFCS 0x02u               /* the device adds the CRC */
#define TX_CMD_RS 0x08u                 /* report status */

#define RX_DESCS 32u                    /* ring lengths must be multiples of 8 descriptors (128 bytes) */
#define TX_DESCS 64u                    /* more than RX, as for virtio: a burst of probes is answered whole */
#define BUFFER_BYTES 2048u              /* RCTL.BSIZE 0: 2048-byte receive buffers; frames up to 1518 fit in one */

struct rx_desc { u64 addr; u16 length; u16 checksum; u8 status; u8 errors; u16 special; };
struct tx_desc { u64 addr; u16 length; u8 cso; u8 cmd; u8 status; u8 css; u16 special; };

static volatile struct rx_desc rx_ring[RX_DESCS] __attribute__((aligned(4096)));
static volatile struct tx_desc tx_ring[TX_DESCS] __attribute__((aligned(4096)));
static u8 rx_buffers[RX_DESCS][BUFFER_BYTES] __attribute__((aligned(4096)));
static u8 tx_buffers[TX_DESCS][BUFFER_BYTES] __attribute__((aligned(4096)));

static struct {
    u32 mmio;                           /* BAR0: no paging, so the physical address is the address */
    u32 tdh_at_heartbeat;
} dev;

static u32 rd(u32 reg) { return *(volatile u32 *)(dev.mmio + reg); }
static void wr(u32 reg, u32 v) { *(volatile u32 *)(dev.mmio + reg) = v; }

static int find(u8 mac[6])
{
    u32 slot = 0, found, bar0;
    while (pci_find(E1000_VENDOR, E1000_82540EM, &slot, &found, &bar0)) {
        if ((bar0 & 1u) || (bar0 & 6u) != 0 || (bar0 & ~0xfu) == 0) continue;   /* a 32-bit memory BAR the firmware placed */
        pci_enable(found, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
        dev.mmio = bar0 & ~0xfu;
        u32 low = rd(RAL0), high = rd(RAH0);    /* QEMU loads receive address 0 with the device's mac= */
        for (u32 i = 0; i < 4u; i++) mac[i] = (u8)(low >> (8u * i));
        mac[4] = (u8)high;
        mac[5] = (u8)(high >> 8);
        return 1;
    }
    return 0;
}

/* Both directions off and the rings taken away, without a device reset (which would also forget the MAC). */
static void stop(void)
{
    wr(RCTL, 0);
    wr(TCTL, 0);
    wr(RDLEN, 0);
    wr(TDLEN, 0);
}

static int start(void)
{
    stop();
    wr(IMC, 0xffffffffu);               /* no interrupts: everything is polled */
    (void)rd(ICR);
    wr(CTRL, rd(CTRL) | CTRL_SLU);
    for (u32 i = 0; i < RX_DESCS; i++) {
        rx_ring[i].addr = (u32)rx_buffers[i];
        rx_ring[i].status = 0;
    }
    for (u32 i = 0; i < TX_DESCS; i++) {
        tx_ring[i].addr = (u32)tx_buffers[i];
        tx_ring[i].cmd = 0;
        tx_ring[i].status = 0;
    }
    compiler_barrier();
    wr(RDBAL, (u32)rx_ring);
    wr(RDBAH, 0);
    wr(RDLEN, sizeof rx_ring);
    wr(RDH, 0);
    wr(RDT, RX_DESCS - 1u);             /* every buffer but one posted: RDT == RDH would mean none */
    wr(TDBAL, (u32)tx_ring);
    wr(TDBAH, 0);
    wr(TDLEN, sizeof tx_ring);
    wr(TDH, 0);
    wr(TDT, 0);
    wr(TIPG, TIPG_82540);
    wr(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
    wr(RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);   /* BSIZE 0 = 2048 bytes */
    dev.tdh_at_heartbeat = 0;
    return rd(RDT) == RX_DESCS - 1u && rd(TDLEN) == sizeof tx_ring;   /* the registers took */
}

static u8 *tx_frame(void)
{
    u32 head = rd(TDH), tail = rd(TDT);
    if (head >= TX_DESCS || tail >= TX_DESCS) return 0;     /* net.c's heartbeat restarts a device this confused */
    if ((tail - head) % TX_DESCS >= TX_DESCS - 1u) return 0;   /* full: one descriptor always stays free */
    return tx_buffers[tail];
}

static void tx_send(u32 frame_len)
{
    u32 tail = rd(TDT);
    tx_ring[tail].length = (u16)frame_len;
    tx_ring[tail].cso = 0;
    tx_ring[tail].css = 0;
    tx_ring[tail].special = 0;
    tx_ring[tail].status = 0;
    tx_ring[tail].cmd = TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS;
    compiler_barrier();
    wr(TDT, (tail + 1u) % TX_DESCS);    /* QEMU sends right here, in this register write */
}

static int receive(u32 budget, nic_rx_handler handle, const struct probe_status *status)
{
    u32 head = rd(RDH), tail = rd(RDT);
    if (head >= RX_DESCS || tail >= RX_DESCS) return -1;
    u32 done = (head + RX_DESCS - tail - 1u) % RX_DESCS;  /* filled by the device and not yet handled */
    if (done > budget) done = budget;
    for (u32 n = 0; n < done; n++) {
        u32 i = (tail + 1u + n) % RX_DESCS;
        u8 st = rx_ring[i].status;
        u32 len = rx_ring[i].length;
        /* the device wrote the descriptor before it moved RDH past it; anything else is an old copy of the page: skip */
        if ((st & (RX_DD | RX_EOP)) == (RX_DD | RX_EOP) && !rx_ring[i].errors && len <= BUFFER_BYTES)
            handle(rx_buffers[i], len, status);
        rx_ring[i].status = 0;
    }
    if (done) {
        compiler_barrier();
        wr(RDT, (tail + done) % RX_DESCS);  /* the handled buffers go back; QEMU delivers what it held back */
    }
    return (int)done;
}

static int tx_stalled(void)
{
    u32 head = rd(TDH);
    int stalled = head != rd(TDT) && head == dev.tdh_at_heartbeat;
    dev.tdh_at_heartbeat = head;
    return stalled;
}

const struct nic_driver e1000_driver = {
    .model = "e1000", .find = find, .start = start, .stop = stop,
    .tx_frame = tx_frame, .tx_send = tx_send, .receive = receive, .tx_stalled = tx_stalled,
};
