/*
 * The NIC layer under net.c: one driver per device model, each polled, keeping its frames in its own BSS below 4 MiB.
 * net.c picks the first driver whose device is there and never looks inside it.
 */
#ifndef FERRY_NIC_H
#define FERRY_NIC_H

#include "guest.h"

/* Handles one received frame (the Ethernet header on, no CRC). */
typedef void (*nic_rx_handler)(const u8 *frame, u32 len, const struct probe_status *status);

struct nic_driver {
    const char *model;                  /* Nova's name of the model (hw_vif_model): printed in the `net` line */
    int (*find)(u8 mac[6]);             /* finds the device and reads its MAC; 0 when there is none it can drive */
    int (*start)(void);                 /* (re)initialises it: rings set, every RX buffer posted; 0 if unusable */
    void (*stop)(void);                 /* the device stops touching our memory */
    u8 *(*tx_frame)(void);              /* where the next frame goes, or 0 when every TX buffer is in flight */
    void (*tx_send)(u32 frame_len);     /* sends what tx_frame() handed out; frame_len is at least 60 */
    /* Hands up to `budget` received frames to `handle` and posts their buffers again; -1 when the ring is not one
       the driver could have left (the caller restarts the device), else the number handled. */
    int (*receive)(u32 budget, nic_rx_handler handle, const struct probe_status *status);
    /* Whether frames sent before the previous call are still not sent; called once a guest second. */
    int (*tx_stalled)(void);
};

extern const struct nic_driver virtio_net_driver;
extern const struct nic_driver e1000_driver;

#endif
