#ifndef FERRY_CONFIGDRIVE_H
#define FERRY_CONFIGDRIVE_H

#include "guest.h"

/* A static IPv4 address from network_data.json, bytes in network order. */
struct net_config {
    u8 ip[4];
    u8 netmask[4];
    u8 gateway[4];
    int has_gateway;
};

/* Fills *out for the NIC with this MAC; 0 on success, else why not ("no-config-drive", "no-network-data", "no-ipv4"). */
const char *config_drive_network(const u8 mac[6], struct net_config *out);

#endif
