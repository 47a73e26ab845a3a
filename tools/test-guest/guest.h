/* What the test guest's files share: fixed-width types, port I/O, COM1 output, the PIT and the network's entry points. */
#ifndef FERRY_GUEST_H
#define FERRY_GUEST_H

typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define PIT_HZ 1193182u
#define TICK_HZ 100u

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* Orders our ring and buffer writes before the index the device reads (x86 keeps stores in order; the compiler must too). */
#define compiler_barrier() __asm__ volatile("" : : : "memory")

void putc_serial(char c);
void puts_serial(const char *s);
void put_dec(u32 v);
void put_hex8(u32 v);
u16 pit_read(void);                     /* PIT channel 0, counting down from 65536 at PIT_HZ */

void *memset(void *dst, int c, u32 n);
void *memcpy(void *dst, const void *src, u32 n);

/* What a UDP probe reply reports: the tick counter and the checksum of the most recent status line. */
struct probe_status {
    u32 counter;
    u32 checksum_counter;
    u32 checksum;
};

void net_init(void);                    /* finds the NIC and its address, prints the `ferry-guest net` line */
void net_poll(const struct probe_status *status);   /* answers what arrived; cheap when nothing did */

#endif
