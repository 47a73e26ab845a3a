/*
 * One NIC (virtio-net or e1000, nic.h) with the address from the config drive. It answers ARP for that address, ICMP
 * echo, and UDP probes on port 7777 with the guest's counter and last checksum (README, "Network"). Polled from the
 * main loop; nothing here ever waits for the network.
 */
#include "configdrive.h"
#include "nic.h"

#define RX_BUDGET 32u                   /* frames handled per poll at most, so a flood cannot stop the dirtier */

#define ETH_HEADER 14u
#define ETH_MIN_FRAME 60u
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ARP_REQUEST 1
#define ARP_REPLY 2
#define IP_HEADER 20u
#define IP_ICMP 1
#define IP_UDP 17
#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8
#define UDP_HEADER 8u
#define PROBE_PORT 7777u
#define PROBE_MAX 64u

/* The drivers net_init tries, in order: virtio-net first, so a guest with both keeps the NIC it always had. */
static const struct nic_driver *const drivers[] = { &virtio_net_driver, &e1000_driver };

static const u8 broadcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const u8 zero_mac[6];

static struct {
    int up;
    const struct nic_driver *driver;
    u8 mac[6];
    struct net_config addr;
    u32 heartbeat_counter;              /* tick counter at the last heartbeat */
} nic;

static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static void put_be16(u8 *p, u32 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }

static int same_bytes(const u8 *a, const u8 *b, u32 n)
{
    while (n--) if (*a++ != *b++) return 0;
    return 1;
}

/* ---- the device ---- */

static void nic_restart(const char *reason)
{
    puts_serial("ferry-guest net restart reason=");
    puts_serial(reason);
    puts_serial("\n");
    nic.up = nic.driver->start();
}

/* The frame area of the next free TX buffer, or 0 when all are in flight: the caller drops its frame, never waits. */
static u8 *tx_frame(void) { return nic.driver->tx_frame(); }

/* Sends the frame tx_frame() handed out. */
static void tx_send(u32 frame_len)
{
    if (frame_len < ETH_MIN_FRAME) {
        u8 *frame = nic.driver->tx_frame();     /* the same buffer again: the driver derives it from the ring, as before */
        if (frame) memset(frame + frame_len, 0, ETH_MIN_FRAME - frame_len);
        frame_len = ETH_MIN_FRAME;
    }
    nic.driver->tx_send(frame_len);
}

/* ---- frames ---- */

static u8 *eth_header(u8 *frame, const u8 *dst, u32 ethertype)
{
    memcpy(frame, dst, 6);
    memcpy(frame + 6, nic.mac, 6);
    put_be16(frame + 12, ethertype);
    return frame + ETH_HEADER;
}

static void send_arp(u32 op, const u8 *eth_dst, const u8 *target_mac, const u8 *target_ip)
{
    u8 *frame = tx_frame();
    if (!frame) return;
    u8 *arp = eth_header(frame, eth_dst, ETHERTYPE_ARP);
    put_be16(arp, 1);                   /* Ethernet */
    put_be16(arp + 2, ETHERTYPE_IPV4);
    arp[4] = 6;
    arp[5] = 4;
    put_be16(arp + 6, op);
    memcpy(arp + 8, nic.mac, 6);
    memcpy(arp + 14, nic.addr.ip, 4);
    memcpy(arp + 18, target_mac, 6);
    memcpy(arp + 24, target_ip, 4);
    tx_send(ETH_HEADER + 28u);
}

static void send_gratuitous_arp(void) { send_arp(ARP_REQUEST, broadcast_mac, zero_mac, nic.addr.ip); }

static void handle_arp(const u8 *arp, u32 len)
{
    if (len < 28u || be16(arp) != 1 || be16(arp + 2) != ETHERTYPE_IPV4 || arp[4] != 6 || arp[5] != 4) return;
    if (be16(arp + 6) != ARP_REQUEST || !same_bytes(arp + 24, nic.addr.ip, 4)) return;
    send_arp(ARP_REPLY, arp + 8, arp + 8, arp + 14);
}

static u32 checksum_add(u32 sum, const u8 *p, u32 len)
{
    for (; len > 1u; len -= 2u, p += 2) sum += (u32)p[0] << 8 | p[1];
    if (len) sum += (u32)p[0] << 8;
    return sum;
}

/* The Internet checksum of what was summed; 0 when the data carried a correct one. */
static u16 checksum_finish(u32 sum)
{
    while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
    return (u16)~sum;
}

static u16 udp_checksum(const u8 *src_ip, const u8 *dst_ip, const u8 *udp, u32 len)
{
    u32 sum = checksum_add(checksum_add(0, src_ip, 4), dst_ip, 4) + IP_UDP + len;
    return checksum_finish(checksum_add(sum, udp, len));
}

/* An IPv4 header from us to dst_ip, behind an Ethernet header to eth_dst; returns where the payload goes. */
static u8 *ipv4_header(u8 *frame, const u8 *eth_dst, const u8 *dst_ip, u8 protocol, u32 payload_len)
{
    u8 *ip = eth_header(frame, eth_dst, ETHERTYPE_IPV4);
    ip[0] = 0x45;                       /* version 4, no options */
    ip[1] = 0;
    put_be16(ip + 2, IP_HEADER + payload_len);
    put_be16(ip + 4, 0);
    put_be16(ip + 6, 0);
    ip[8] = 64;
    ip[9] = protocol;
    put_be16(ip + 10, 0);
    memcpy(ip + 12, nic.addr.ip, 4);
    memcpy(ip + 16, dst_ip, 4);
    put_be16(ip + 10, checksum_finish(checksum_add(0, ip, IP_HEADER)));
    return ip + IP_HEADER;
}

static void handle_icmp(const u8 *frame, const u8 *ip, const u8 *icmp, u32 len)
{
    if (len < 8u || icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 || checksum_finish(checksum_add(0, icmp, len)) != 0) return;
    u8 *reply = tx_frame();
    if (!reply) return;
    u8 *echo = ipv4_header(reply, frame + 6, ip + 12, IP_ICMP, len);
    memcpy(echo, icmp, len);            /* same id, sequence and data */
    echo[0] = ICMP_ECHO_REPLY;
    put_be16(echo + 2, 0);
    put_be16(echo + 2, checksum_finish(checksum_add(0, echo, len)));
    tx_send(ETH_HEADER + IP_HEADER + len);
}

static u8 *put_text(u8 *p, const char *s) { while (*s) *p++ = (u8)*s++; return p; }

static u8 *put_decimal(u8 *p, u32 v)
{
    u8 digits[10];
    u32 n = 0;
    do { digits[n++] = (u8)('0' + v % 10u); v /= 10u; } while (v);
    while (n) *p++ = digits[--n];
    return p;
}

static u8 *put_hex32(u8 *p, u32 v)
{
    for (int shift = 28; shift >= 0; shift -= 4) *p++ = (u8)"0123456789abcdef"[(v >> shift) & 0xfu];
    return p;
}

/* A probe gets the guest's state back; the checksum is the last status line's, so a reply never costs a region checksum. */
static void handle_udp(const u8 *frame, const u8 *ip, const u8 *udp, u32 len, const struct probe_status *status)
{
    if (len < UDP_HEADER || be16(udp + 2) != PROBE_PORT) return;
    u32 udp_len = be16(udp + 4);
    if (udp_len < UDP_HEADER + 1u || udp_len > len || udp_len > UDP_HEADER + PROBE_MAX) return;
    if (be16(udp + 6) != 0 && udp_checksum(ip + 12, ip + 16, udp, udp_len) != 0) return;
    u8 *reply = tx_frame();
    if (!reply) return;
    u8 *text = reply + ETH_HEADER + IP_HEADER + UDP_HEADER, *end = text;
    end = put_text(end, "ferry-guest counter=");
    end = put_decimal(end, status->counter);
    end = put_text(end, " checksum_counter=");
    end = put_decimal(end, status->checksum_counter);
    end = put_text(end, " checksum=");
    end = put_hex32(end, status->checksum);
    end = put_text(end, " probe=");
    memcpy(end, udp + UDP_HEADER, udp_len - UDP_HEADER);
    end += udp_len - UDP_HEADER;
    u32 reply_len = UDP_HEADER + (u32)(end - text);
    u8 *out = ipv4_header(reply, frame + 6, ip + 12, IP_UDP, reply_len);
    put_be16(out, PROBE_PORT);
    put_be16(out + 2, be16(udp));
    put_be16(out + 4, reply_len);
    put_be16(out + 6, 0);
    u16 sum = udp_checksum(nic.addr.ip, ip + 12, out, reply_len);
    put_be16(out + 6, sum ? sum : 0xffffu);     /* 0 would mean "no checksum" */
    tx_send(ETH_HEADER + IP_HEADER + reply_len);
}

static void handle_ipv4(const u8 *frame, u32 len, const struct probe_status *status)
{
    const u8 *ip = frame + ETH_HEADER;
    if (len < ETH_HEADER + IP_HEADER || (ip[0] >> 4) != 4) return;
    u32 header_len = (ip[0] & 0xfu) * 4u, total = be16(ip + 2);
    if (header_len < IP_HEADER || total < header_len || total > len - ETH_HEADER) return;
    if (be16(ip + 6) & 0x3fffu) return;     /* a fragment: pings up to the MTU and probes come whole */
    if (!same_bytes(ip + 16, nic.addr.ip, 4) || checksum_finish(checksum_add(0, ip, header_len)) != 0) return;
    if (ip[9] == IP_ICMP) handle_icmp(frame, ip, ip + header_len, total - header_len);
    else if (ip[9] == IP_UDP) handle_udp(frame, ip, ip + header_len, total - header_len, status);
}

static void handle_frame(const u8 *frame, u32 len, const struct probe_status *status)
{
    if (len < ETH_HEADER || (frame[6] & 1u)) return;   /* a multicast source is nobody to answer */
    u32 ethertype = be16(frame + 12);
    int to_us = same_bytes(frame, nic.mac, 6);
    if (ethertype == ETHERTYPE_ARP && (to_us || same_bytes(frame, broadcast_mac, 6))) handle_arp(frame + ETH_HEADER, len - ETH_HEADER);
    else if (ethertype == ETHERTYPE_IPV4 && to_us) handle_ipv4(frame, len, status);
}

/*
 * Once a guest second: a gratuitous ARP, and a look at whether the last second's transmissions completed. QEMU
 * quietly stops a legacy device whose rings it finds inconsistent (for instance when it loads them from a stale page
 * after a migration) and only a reset revives it; without sending now and then, a guest nobody reaches could not tell.
 */
static void heartbeat(u32 counter)
{
    nic.heartbeat_counter = counter;
    if (nic.driver->tx_stalled()) {
        nic_restart("tx-stalled");
        if (!nic.up) return;
    }
    send_gratuitous_arp();
}

void net_poll(const struct probe_status *status)
{
    if (!nic.up) return;
    if (status->counter - nic.heartbeat_counter >= TICK_HZ) {
        heartbeat(status->counter);
        if (!nic.up) return;
    }
    if (nic.driver->receive(RX_BUDGET, handle_frame, status) < 0) nic_restart("rx-inconsistent");   /* not the ring we gave it */
}

static void put_hex2(u8 v)
{
    putc_serial("0123456789abcdef"[v >> 4]);
    putc_serial("0123456789abcdef"[v & 0xfu]);
}

static void put_ipv4(const u8 a[4])
{
    for (int i = 0; i < 4; i++) { if (i) putc_serial('.'); put_dec(a[i]); }
}

void net_init(void)
{
    const char *why_not = "no-nic";    /* the usual test guest: no disk is touched */
    for (u32 i = 0; i < sizeof drivers / sizeof drivers[0] && !nic.driver; i++)
        if (drivers[i]->find(nic.mac)) nic.driver = drivers[i];
    if (nic.driver) {
        why_not = config_drive_network(nic.mac, &nic.addr);
        if (!why_not && !nic.driver->start()) why_not = "no-nic";
    }
    if (why_not) {
        if (nic.driver) nic.driver->stop();
        puts_serial("ferry-guest net none reason=");
        puts_serial(why_not);
        puts_serial("\n");
        return;
    }
    nic.up = 1;
    puts_serial("ferry-guest net mac=");
    for (int i = 0; i < 6; i++) { if (i) putc_serial(':'); put_hex2(nic.mac[i]); }
    puts_serial(" ip="); put_ipv4(nic.addr.ip);
    puts_serial(" netmask="); put_ipv4(nic.addr.netmask);
    puts_serial(" gateway=");
    if (nic.addr.has_gateway) put_ipv4(nic.addr.gateway); else puts_serial("none");
    puts_serial(" udp="); put_dec(PROBE_PORT);
    puts_serial(" nic="); puts_serial(nic.driver->model);
    puts_serial("\n");
    nic.heartbeat_counter = 0;
    send_gratuitous_arp();
}
