/*
 * Ferry test guest: a multiboot v1 kernel that dirties a memory region at a rate set on the kernel
 * command line and prints a verifiable checksum of that region on COM1. No libc, no interrupts.
 * See README.md for the exact function a test can check the printed checksum against.
 * With a NIC and a config drive it also answers on the network (net.c), polled from the loops below.
 */
#include "guest.h"

#define COM1 0x3f8
#define PIT_COUNTS_PER_TICK ((PIT_HZ + TICK_HZ / 2) / TICK_HZ)
#define PRINT_EVERY_TICKS 50u           /* default: print twice per (guest) second */
#define MAX_LAG_TICKS 100u              /* drop lag beyond this instead of spiralling */
#define REGION_BASE 0x400000u           /* 4 MiB, above the kernel */
#define PAGE_WORDS 1024u

struct multiboot_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline;
};

static void serial_init(void)
{
    outb(COM1 + 1, 0x00);               /* no interrupts */
    outb(COM1 + 3, 0x80);               /* DLAB */
    outb(COM1 + 0, 0x01);               /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);               /* 8N1 */
    outb(COM1 + 2, 0xC7);               /* FIFO on, cleared */
    outb(COM1 + 4, 0x03);               /* DTR, RTS */
}

void putc_serial(char c)
{
    for (u32 i = 0; i < 100000u && !(inb(COM1 + 5) & 0x20); i++) { }
    outb(COM1, (u8)c);
}

void puts_serial(const char *s) { while (*s) putc_serial(*s++); }

void put_dec(u32 v)
{
    char buf[11]; int i = 10; buf[i] = 0;
    do { buf[--i] = (char)('0' + v % 10u); v /= 10u; } while (v);
    puts_serial(&buf[i]);
}

void put_hex8(u32 v)
{
    static const char digits[] = "0123456789abcdef";
    for (int s = 28; s >= 0; s -= 4) putc_serial(digits[(v >> s) & 0xF]);
}

/* ---- command line: "key=value" tokens anywhere (QEMU puts the kernel path first) ---- */
static int parse_u32(const char *cmdline, const char *key, u32 *out)
{
    for (const char *p = cmdline; *p; p++) {
        if (p != cmdline && p[-1] != ' ') continue;
        const char *k = key, *q = p;
        while (*k && *q == *k) { k++; q++; }
        if (*k || *q != '=') continue;
        q++;
        u32 v = 0; int any = 0;
        while (*q >= '0' && *q <= '9') { v = v * 10u + (u32)(*q - '0'); q++; any = 1; }
        if (any) { *out = v; return 1; }
    }
    return 0;
}

/* ---- PIT channel 0, mode 2, divisor 65536, polled (no IRQs) ---- */
u16 pit_read(void)
{
    outb(0x43, 0x00);                   /* latch channel 0 */
    u8 lo = inb(0x40);
    u8 hi = inb(0x40);
    return (u16)(lo | (hi << 8));
}

/*
 * ACPI PCI hotplug of QEMU's pc machine (PIIX4, I/O ports 0xae00-0xae0f): a device_del marks its slot in the "down"
 * register and waits for the OS to eject it, which an OS does from its ACPI tables. This guest has no ACPI
 * interpreter, so it answers every request itself: the host can take a volume's disk away from it.
 */
#define PCIHP_DOWN 0xae04
#define PCIHP_EJECT 0xae08

static void eject_requested_slots(void)
{
    u32 down = inl(PCIHP_DOWN);
    if (down) outl(PCIHP_EJECT, down);
}

static void pit_init(void)
{
    outb(0x43, 0x34);                   /* channel 0, lo/hi, mode 2 */
    outb(0x40, 0x00);
    outb(0x40, 0x00);                   /* 0 = 65536 */
}

/* ---- the region's content: word w of page p after the page was written g times ---- */
static inline u32 word_value(u32 page, u32 word, u32 gen)
{
    u32 x = ((page << 10) | word) ^ (gen * 0x9E3779B1u);
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static u32 g_pages;                     /* region size in pages (at most 65535, so pages squared fits in 32 bits) */

/*
 * The tick counter, the one value that must survive a live migration exactly, lives in EBX and nowhere else (every
 * file is built with -ffixed-ebx, so no code saves, spills or reuses it). A migration carries the CPU's registers
 * exactly, while under TCG on QEMU 7.2 it may hand over a stale copy of a page the guest writes often (README): two
 * copies of the counter on their own pages both came back 30 ticks old after a post-copy. Locals are on the stack,
 * so a status line is printed only if the counter it checksummed is still the counter after the checksums.
 */
register u32 g_counter __asm__("ebx");

/*
 * Where the writes stand after `counter` ticks of `per_tick` pages: `wraps` completed passes over the region,
 * `cursor` the next page. Derived from the counter alone, never kept in memory: a live migration under TCG on
 * QEMU 7.2 can hand over a stale copy of a page (README), and bookkeeping kept in one would drift from the
 * closed form for good; a stale counter only replays ticks whose writes are already there.
 * 32-bit only: counter = q * pages + r, so counter * per_tick = q * per_tick * pages + r * per_tick, r * per_tick < pages^2.
 */
static void position_at(u32 counter, u32 per_tick, u32 *wraps, u32 *cursor)
{
    u32 q = counter / g_pages, r = counter % g_pages, rest = r * per_tick;
    *wraps = q * per_tick + rest / g_pages;
    *cursor = rest % g_pages;
}

static void write_page(u32 page, u32 gen)
{
    volatile u32 *w = (volatile u32 *)(REGION_BASE + page * 4096u);
    for (u32 i = 0; i < PAGE_WORDS; i++) w[i] = word_value(page, i, gen);
}

/*
 * FNV-1a over the region's 32-bit words, in address order. The network is polled after every page (when `poll`
 * is given) so that a large region's checksum does not hold probes up for its whole duration.
 */
static u32 checksum_memory(const struct probe_status *poll)
{
    u32 c = 0x811c9dc5u;
    volatile u32 *w = (volatile u32 *)REGION_BASE;
    for (u32 p = 0; p < g_pages; p++, w += PAGE_WORDS) {
        for (u32 i = 0; i < PAGE_WORDS; i++) c = (c ^ w[i]) * 0x01000193u;
        if (poll) net_poll(poll);
    }
    return c;
}

/* The same checksum, computed from the counter alone (what the memory must hold). */
static u32 checksum_expected(u32 counter, u32 per_tick, const struct probe_status *poll)
{
    u32 c = 0x811c9dc5u, wraps, cursor;
    position_at(counter, per_tick, &wraps, &cursor);
    for (u32 p = 0; p < g_pages; p++) {
        u32 gen = wraps + (p < cursor ? 1u : 0u);
        for (u32 i = 0; i < PAGE_WORDS; i++) c = (c ^ word_value(p, i, gen)) * 0x01000193u;
        if (poll) net_poll(poll);
    }
    return c;
}

void kmain(u32 magic, struct multiboot_info *mbi)
{
    const char *cmdline = "";
    u32 region_mib = 4, dirty_kib = 64, mem_upper_kib = 0, status_every = PRINT_EVERY_TICKS;
    if (magic == 0x2BADB002u && mbi) {
        if (mbi->flags & (1u << 2)) cmdline = (const char *)mbi->cmdline;
        if (mbi->flags & 1u) mem_upper_kib = mbi->mem_upper;
    }
    parse_u32(cmdline, "region_mib", &region_mib);
    parse_u32(cmdline, "dirty_kib_per_tick", &dirty_kib);
    parse_u32(cmdline, "status_every_ticks", &status_every);  /* large regions: checksum less often */

    serial_init();
    if (region_mib < 1) region_mib = 1;
    if (status_every < 1) status_every = 1;
    if (mem_upper_kib) {                /* keep the region inside RAM (mem_upper starts at 1 MiB) */
        u32 max_mib = (mem_upper_kib / 1024u + 1u > 5u) ? mem_upper_kib / 1024u + 1u - 5u : 1u;
        if (region_mib > max_mib) region_mib = max_mib;
    }
    if (region_mib > 255u) region_mib = 255u;
    g_pages = region_mib * 256u;
    u32 pages_per_tick = (dirty_kib + 3u) / 4u;
    if (pages_per_tick > g_pages) pages_per_tick = g_pages;

    for (u32 p = 0; p < g_pages; p++) write_page(p, 0);   /* prefill: generation 0 everywhere */

    puts_serial("ferry-guest boot region_mib="); put_dec(region_mib);
    puts_serial(" dirty_kib_per_tick="); put_dec(pages_per_tick * 4u);
    puts_serial(" tick_hz="); put_dec(TICK_HZ);
    puts_serial("\n");

    pit_init();                         /* before the network: the config drive's reads time out by it */
    net_init();

    /* What a probe is told. Until the first status line has its checksum, nothing is polled: the reply would have none. */
    static struct probe_status status;
    const struct probe_status *poll = 0;
    u16 last = pit_read();
    u32 acc = 0, pending = 0, since_print = status_every;
    g_counter = 0;
    for (;;) {
        if (poll) net_poll(poll);
        u16 now = pit_read();
        acc += (u16)(last - now);
        last = now;
        while (acc >= PIT_COUNTS_PER_TICK) { acc -= PIT_COUNTS_PER_TICK; pending++; since_print++; }
        if (pending > MAX_LAG_TICKS) pending = MAX_LAG_TICKS;

        if (since_print >= status_every) {
            since_print = 0;
            u32 counter, actual, expected;
            do {                        /* again if a stale stack page handed `counter` back older (see g_counter) */
                counter = g_counter;
                actual = checksum_memory(poll);
                expected = checksum_expected(counter, pages_per_tick, poll);
            } while (counter != g_counter);
            puts_serial("ferry-guest counter="); put_dec(counter);
            puts_serial(" checksum="); put_hex8(actual);
            puts_serial("\n");
            if (actual != expected) {
                puts_serial("ferry-guest corrupt counter="); put_dec(counter);
                puts_serial(" checksum="); put_hex8(actual);
                puts_serial(" expected="); put_hex8(expected);
                puts_serial("\n");
            }
            status.checksum_counter = counter;
            status.checksum = actual;
            poll = &status;
        }

        if (pending == 0) continue;
        pending--;
        eject_requested_slots();
        u32 wraps, cursor;
        position_at(g_counter, pages_per_tick, &wraps, &cursor);
        for (u32 i = 0; i < pages_per_tick; i++) {
            write_page(cursor, wraps + 1u);
            if (++cursor == g_pages) { cursor = 0; wraps++; }
            if (poll) net_poll(poll);   /* a hot guest writes for most of a tick: answer between pages */
        }
        g_counter++;
        status.counter = g_counter;
    }
}
