/*
 * memset and memcpy: there is no libc, and gcc may emit calls to them even in freestanding code (struct copies,
 * loops it recognises). Their own loops must not be turned back into calls to themselves.
 */
#include "guest.h"

__attribute__((optimize("no-tree-loop-distribute-patterns")))
void *memset(void *dst, int c, u32 n)
{
    u8 *d = dst;
    while (n--) *d++ = (u8)c;
    return dst;
}

__attribute__((optimize("no-tree-loop-distribute-patterns")))
void *memcpy(void *dst, const void *src, u32 n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
