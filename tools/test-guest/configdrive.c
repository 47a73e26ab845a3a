/*
 * The guest's address from Ferry's config drive, as cloud-init would take it: the virtio-blk disk whose ISO 9660
 * volume is labelled config-2, file openstack/latest/network_data.json (Nova's format), the ipv4 network of the
 * link with the NIC's MAC.
 */
#include "configdrive.h"
#include "virtio.h"

#define ISO_SECTOR 2048u
#define DISK_SECTORS_PER_ISO_SECTOR 4u  /* virtio-blk counts 512-byte sectors */
#define NETWORK_DATA_MAX 16384u         /* Nova writes well under 1 KiB per NIC */
#define BLK_TIMEOUT_MS 2000u

static u8 blk_ring[VIRTQ_MEM_BYTES] __attribute__((aligned(4096)));
static u8 sector[ISO_SECTOR];
static char network_data[NETWORK_DATA_MAX + 1];

struct blk_request_header { u32 type; u32 reserved; u64 sector; };
static struct blk_request_header blk_header;
static volatile u8 blk_status;

struct blk {
    u64 capacity;                       /* in 512-byte sectors */
    struct virtq q;
};

static u32 le32(const u8 *p) { return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24; }

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static int streq(const char *a, const char *b)
{
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

/* ---- virtio-blk: one request at a time, polled ---- */

static int blk_open(struct blk *d, u16 io)
{
    virtio_start(io, 0);                /* no features: plain 512-byte-sector reads are all we need */
    d->capacity = (u64)inl(io + VIRTIO_DEVICE_CONFIG) | (u64)inl(io + VIRTIO_DEVICE_CONFIG + 4) << 32;
    if (!virtq_setup(&d->q, io, 0, blk_ring)) { virtio_reset(io); return 0; }
    d->q.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
    virtio_driver_ok(io);
    return 1;
}

static void set_desc(volatile struct vring_desc *desc, const volatile void *buffer, u32 len, u16 flags, u16 next)
{
    desc->addr = (u32)buffer;           /* no paging: the address is the physical address */
    desc->len = len;
    desc->flags = flags;
    desc->next = next;
}

/* A chain of three descriptors: the request (device reads), the data and the status byte (device writes). */
static int blk_read(struct blk *d, u32 iso_sector, u32 count, void *dst)
{
    u64 first = (u64)iso_sector * DISK_SECTORS_PER_ISO_SECTOR;
    if (first + (u64)count * DISK_SECTORS_PER_ISO_SECTOR > d->capacity) return 0;
    blk_header.type = 0;                /* VIRTIO_BLK_T_IN */
    blk_header.reserved = 0;
    blk_header.sector = first;
    blk_status = 0xff;
    set_desc(&d->q.desc[0], &blk_header, sizeof blk_header, VRING_DESC_F_NEXT, 1);
    set_desc(&d->q.desc[1], dst, count * ISO_SECTOR, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
    set_desc(&d->q.desc[2], &blk_status, 1, VRING_DESC_F_WRITE, 0);
    u16 idx = d->q.avail->idx;
    d->q.avail->ring[idx % d->q.size] = 0;
    compiler_barrier();
    d->q.avail->idx = (u16)(idx + 1u);
    virtq_kick(&d->q);
    return virtq_wait_idle(&d->q, BLK_TIMEOUT_MS) && blk_status == 0;
}

/* ---- ISO 9660 ---- */

/* An ISO 9660 name ("NETWORK_DATA.JSON;1", "LATEST", "USER_DATA.") against a plain one, case-insensitively. */
static int iso_name_is(const u8 *name, u32 len, const char *want)
{
    u32 n = 0;
    while (n < len && name[n] != ';') n++;
    if (n > 0 && name[n - 1] == '.') n--;
    for (u32 i = 0; i < n; i++, want++)
        if (!*want || lower((char)name[i]) != lower(*want)) return 0;
    return *want == 0;
}

/* Looks `name` up in the directory at *extent (*size bytes); on success they become the entry's. */
static int iso_lookup(struct blk *d, u32 *extent, u32 *size, const char *name, int want_directory)
{
    for (u32 offset = 0; offset < *size; offset += ISO_SECTOR) {
        if (!blk_read(d, *extent + offset / ISO_SECTOR, 1, sector)) return 0;
        /* records never cross a sector; a zero length pads out the rest of it */
        for (u32 i = 0; i + 34u <= ISO_SECTOR && sector[i] >= 34u && i + sector[i] <= ISO_SECTOR; i += sector[i]) {
            const u8 *record = &sector[i];
            u32 name_len = record[32];
            int is_directory = (record[25] & 2u) != 0;
            if (33u + name_len <= record[0] && is_directory == want_directory && iso_name_is(record + 33, name_len, name)) {
                *extent = le32(record + 2);
                *size = le32(record + 10);
                return 1;
            }
        }
    }
    return 0;
}

/* Whether d holds a volume labelled config-2; if so, its root directory's extent and size. */
static int is_config_drive(struct blk *d, u32 *root_extent, u32 *root_size)
{
    static const char label[] = "config-2";
    if (!blk_read(d, 16, 1, sector)) return 0;   /* the primary volume descriptor */
    if (sector[0] != 1 || sector[1] != 'C' || sector[2] != 'D' || sector[3] != '0' || sector[4] != '0' || sector[5] != '1') return 0;
    for (u32 i = 0; i < 32u; i++) {       /* volume id: 32 characters, padded with spaces */
        char want = i < sizeof label - 1 ? label[i] : ' ';
        if (lower((char)sector[40 + i]) != want) return 0;
    }
    *root_extent = le32(sector + 156 + 2);  /* the root directory's record */
    *root_size = le32(sector + 156 + 10);
    return 1;
}

/* Reads openstack/latest/network_data.json into network_data (NUL-terminated); its length, or -1. */
static int read_network_data(struct blk *d, u32 extent, u32 size)
{
    if (!iso_lookup(d, &extent, &size, "openstack", 1) || !iso_lookup(d, &extent, &size, "latest", 1)
        || !iso_lookup(d, &extent, &size, "network_data.json", 0) || size > NETWORK_DATA_MAX)
        return -1;
    u32 sectors = (size + ISO_SECTOR - 1u) / ISO_SECTOR;
    if (sectors && !blk_read(d, extent, sectors, network_data)) return -1;
    network_data[size] = 0;
    return (int)size;
}

/* ---- a JSON scanner just big enough for network_data.json: it follows the structure, so key order and nesting cannot fool it ---- */

struct json { const char *p, *end; int bad; };

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int json_at(struct json *j, char c)
{
    while (j->p < j->end && is_space(*j->p)) j->p++;
    return !j->bad && j->p < j->end && *j->p == c;
}

static int json_eat(struct json *j, char c)
{
    if (!json_at(j, c)) return 0;
    j->p++;
    return 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* A string into out (cap bytes with the NUL; cap 0 skips it). 0 if it is not a string or did not fit, so a cut name never matches. */
static int json_string(struct json *j, char *out, u32 cap)
{
    u32 n = 0;
    int fits = 1;
    if (!json_eat(j, '"')) { j->bad = 1; return 0; }
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\' && j->p < j->end) {
            c = *j->p++;
            if (c == 'b') c = '\b'; else if (c == 'f') c = '\f'; else if (c == 'n') c = '\n';
            else if (c == 'r') c = '\r'; else if (c == 't') c = '\t';
            else if (c == 'u') {        /* System.Text.Json escapes more than it must (\u002B for +); non-ASCII becomes '?' */
                u32 v = 0;
                for (int k = 0; k < 4; k++) {
                    int h = j->p < j->end ? hex_digit(*j->p++) : -1;
                    if (h < 0) { j->bad = 1; return 0; }
                    v = v << 4 | (u32)h;
                }
                c = v < 0x80u ? (char)v : '?';
            }
        }
        if (n + 1u < cap) out[n++] = c; else fits = 0;
    }
    if (j->p >= j->end) { j->bad = 1; return 0; }
    j->p++;
    if (cap) out[n] = 0;
    return fits;
}

static void json_skip(struct json *j, int depth)
{
    if (depth > 32) { j->bad = 1; return; }
    if (json_at(j, '"')) { json_string(j, 0, 0); return; }
    if (json_at(j, '{') || json_at(j, '[')) {
        char close = *j->p == '{' ? '}' : ']';
        j->p++;
        if (json_eat(j, close)) return;
        do {
            if (close == '}') {
                json_string(j, 0, 0);
                if (!json_eat(j, ':')) { j->bad = 1; return; }
            }
            json_skip(j, depth + 1);
        } while (!j->bad && json_eat(j, ','));
        if (!json_eat(j, close)) j->bad = 1;
        return;
    }
    const char *start = j->p;           /* number, true, false, null */
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']' && !is_space(*j->p)) j->p++;
    if (j->p == start) j->bad = 1;
}

/* A string value into out, or skips a value of another type (null MTU, say). */
static int json_string_value(struct json *j, char *out, u32 cap)
{
    if (json_at(j, '"')) return json_string(j, out, cap);
    json_skip(j, 0);
    return 0;
}

/* Iterates an object: the first call (started = 0) opens it; each 1 leaves the member's key in key and the cursor at its value, which the caller must consume. */
static int json_member(struct json *j, int *started, char *key, u32 cap)
{
    if (!*started) {
        *started = 1;
        if (!json_eat(j, '{')) { j->bad = 1; return 0; }
        if (json_eat(j, '}')) return 0;
    } else if (!json_eat(j, ',')) {
        if (!json_eat(j, '}')) j->bad = 1;
        return 0;
    }
    if (!json_string(j, key, cap)) key[0] = 0;
    if (!json_eat(j, ':')) j->bad = 1;
    return !j->bad;
}

/* Iterates an array the same way: each 1 leaves the cursor at an element, which the caller must consume. */
static int json_element(struct json *j, int *started)
{
    if (!*started) {
        *started = 1;
        if (!json_eat(j, '[')) { j->bad = 1; return 0; }
        if (json_eat(j, ']')) return 0;
        return !j->bad;
    }
    if (json_eat(j, ',')) return !j->bad;
    if (!json_eat(j, ']')) j->bad = 1;
    return 0;
}

static int parse_ipv4(const char *s, u8 out[4])
{
    for (int i = 0; i < 4; i++) {
        u32 v = 0, digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4u) { v = v * 10u + (u32)(*s++ - '0'); digits++; }
        if (!digits || v > 255u || *s != (i < 3 ? '.' : 0)) return 0;
        out[i] = (u8)v;
        s++;
    }
    return 1;
}

static int mac_is(const char *s, const u8 mac[6])
{
    for (int i = 0; i < 6; i++) {
        int hi = hex_digit(s[0]), lo = hi < 0 ? -1 : hex_digit(s[1]);
        if (lo < 0 || (u8)(hi << 4 | lo) != mac[i] || s[2] != (i < 5 ? ':' : 0)) return 0;
        s += 3;
    }
    return 1;
}

#define JSON_NAME_MAX 96

/* "links": the id of the first link whose ethernet_mac_address is the NIC's MAC, into link_id ("" if none). */
static void scan_links(struct json *j, const u8 mac[6], char link_id[JSON_NAME_MAX])
{
    int in_array = 0;
    while (json_element(j, &in_array)) {
        char key[32], id[JSON_NAME_MAX] = "", value[32];
        int in_object = 0, has_id = 0, ours = 0;
        while (json_member(j, &in_object, key, sizeof key)) {
            if (streq(key, "id")) has_id = json_string_value(j, id, sizeof id);
            else if (streq(key, "ethernet_mac_address")) ours = json_string_value(j, value, sizeof value) && mac_is(value, mac);
            else json_skip(j, 0);
        }
        if (ours && has_id && !link_id[0]) memcpy(link_id, id, sizeof id);
    }
}

/* A default route's gateway (network and netmask 0.0.0.0) from a network's "routes". */
static void scan_routes(struct json *j, struct net_config *net)
{
    int in_array = 0;
    while (json_element(j, &in_array)) {
        char key[32], value[32];
        u8 gateway[4];
        int in_object = 0, any_network = 0, any_netmask = 0, has_gateway = 0;
        while (json_member(j, &in_object, key, sizeof key)) {
            if (streq(key, "network")) any_network = json_string_value(j, value, sizeof value) && streq(value, "0.0.0.0");
            else if (streq(key, "netmask")) any_netmask = json_string_value(j, value, sizeof value) && streq(value, "0.0.0.0");
            else if (streq(key, "gateway")) has_gateway = json_string_value(j, value, sizeof value) && parse_ipv4(value, gateway);
            else json_skip(j, 0);
        }
        if (any_network && any_netmask && has_gateway && !net->has_gateway) {
            memcpy(net->gateway, gateway, 4);
            net->has_gateway = 1;
        }
    }
}

/* "networks": the first static ipv4 network on link_id (on any link when link_id is ""). */
static int scan_networks(struct json *j, const char *link_id, struct net_config *out)
{
    int in_array = 0, found = 0;
    while (json_element(j, &in_array)) {
        char key[32], type[16] = "", link[JSON_NAME_MAX] = "", value[32];
        struct net_config net = {0};
        int in_object = 0, has_ip = 0, has_netmask = 0;
        while (json_member(j, &in_object, key, sizeof key)) {
            if (streq(key, "type")) json_string_value(j, type, sizeof type);
            else if (streq(key, "link")) json_string_value(j, link, sizeof link);
            else if (streq(key, "ip_address")) has_ip = json_string_value(j, value, sizeof value) && parse_ipv4(value, net.ip);
            else if (streq(key, "netmask")) has_netmask = json_string_value(j, value, sizeof value) && parse_ipv4(value, net.netmask);
            else if (streq(key, "routes") && json_at(j, '[')) scan_routes(j, &net);
            else json_skip(j, 0);
        }
        if (!found && streq(type, "ipv4") && has_ip && has_netmask && (!link_id[0] || streq(link, link_id))) {
            *out = net;
            found = 1;
        }
    }
    return found;
}

/* The link with the NIC's MAC, then its first static ipv4 network: two passes, as "networks" may come before "links". */
static const char *parse_network_data(int len, const u8 mac[6], struct net_config *out)
{
    char key[32], link_id[JSON_NAME_MAX] = "";
    struct json j = { network_data, network_data + len, 0 };
    int in_object = 0;
    while (json_member(&j, &in_object, key, sizeof key)) {
        if (streq(key, "links") && json_at(&j, '[')) scan_links(&j, mac, link_id);
        else json_skip(&j, 0);
    }
    if (j.bad) return "no-network-data";
    j.p = network_data;
    in_object = 0;
    int found = 0;
    while (json_member(&j, &in_object, key, sizeof key)) {
        if (!found && streq(key, "networks") && json_at(&j, '[')) found = scan_networks(&j, link_id, out);
        else json_skip(&j, 0);
    }
    if (j.bad) return "no-network-data";
    return found ? 0 : "no-ipv4";
}

const char *config_drive_network(const u8 mac[6], struct net_config *out)
{
    u32 slot = 0;
    u16 io;
    while ((io = virtio_pci_find(VIRTIO_PCI_BLK, &slot)) != 0) {
        struct blk d;
        if (!blk_open(&d, io)) continue;
        u32 root_extent, root_size;
        int found = is_config_drive(&d, &root_extent, &root_size);
        int len = found ? read_network_data(&d, root_extent, root_size) : -1;
        virtio_reset(io);               /* done with it: the device must not keep our ring */
        if (!found) continue;
        return len < 0 ? "no-network-data" : parse_network_data(len, mac, out);
    }
    return "no-config-drive";
}
