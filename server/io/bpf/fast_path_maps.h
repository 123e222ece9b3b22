/* The kernel fast path's maps, shared by the XDP program (fast_path.bpf.c) and ternd
 * (kernel_fast_path.cpp). Plain C: both compilers read it. Addresses are 16 bytes, IPv4 as
 * IPv4-mapped IPv6 (::ffff:a.b.c.d); ports and channel numbers in network byte order. */
#ifndef TERN_FAST_PATH_MAPS_H
#define TERN_FAST_PATH_MAPS_H

#include <linux/types.h>

#define TERN_FP_FAMILY_V4 4
#define TERN_FP_FAMILY_V6 6

/* Client to peer: a ChannelData datagram from `client` to the listener address `server`
 * on `channel`. */
struct tern_fp_channel_key {
    __u8 client_ip[16];
    __u8 server_ip[16];
    __be16 client_port;
    __be16 server_port;
    __be16 channel;
    __u16 family; /* TERN_FP_FAMILY_* */
};

/* ... leaves from the relayed address to the peer. Counters: payload bytes, by the program. */
struct tern_fp_channel_value {
    __u8 relay_ip[16];
    __u8 peer_ip[16];
    __be16 relay_port;
    __be16 peer_port;
    __u32 allocation_budget; /* slots in `budgets`, TERN_FP_NO_BUDGET for none */
    __u32 user_budget;
    __u32 reserved;
    __u64 packets;
    __u64 bytes;
};

/* Peer to client: a datagram from `peer` to the relayed address `relay`. */
struct tern_fp_peer_key {
    __u8 relay_ip[16];
    __u8 peer_ip[16];
    __be16 relay_port;
    __be16 peer_port;
    __u16 family;
    __u16 reserved;
};

/* ... gains the ChannelData header of `channel` and leaves from `server` to `client`. */
struct tern_fp_peer_value {
    __u8 client_ip[16];
    __u8 server_ip[16];
    __be16 client_port;
    __be16 server_port;
    __be16 channel;
    __u16 reserved;
    __u32 allocation_budget;
    __u32 user_budget;
    __u64 packets;
    __u64 bytes;
};

/* limits.allocation_bandwidth and user_bandwidth in the kernel: a token bucket per direction,
 * refilled by the program itself from the clock (lock-free: the CPU that moves `last_ns` adds
 * the time since), so a cap holds as it does in user space. ternd sets rate and burst. */
#define TERN_FP_NO_BUDGET 0xFFFFFFFFu
struct tern_fp_bucket {
    __s64 tokens;
    __u64 last_ns;
    __u64 bytes_per_second;
    __u64 burst;
};
struct tern_fp_budget {
    struct tern_fp_bucket to_peer;
    struct tern_fp_bucket to_client;
};

/* Where a remote address was last seen: the interface a matched datagram from it came in on
 * and the two MAC addresses it carried. The program learns these (it never asks the FIB, which
 * would need IP forwarding on); a destination not learned yet goes to user space. */
struct tern_fp_neighbor_key {
    __u8 ip[16];
    __u16 family;
    __u16 reserved;
};

struct tern_fp_neighbor_value {
    __u32 ifindex;
    __u8 remote_mac[6]; /* the sender's (or its gateway's) MAC: the destination MAC back */
    __u8 local_mac[6];  /* ours on that interface: the source MAC back */
};

/* Per attached interface, by ifindex. */
#define TERN_FP_IFACE_LOOPBACK 1u /* deferred checksums: see looks_deferred() */
struct tern_fp_iface_value {
    __u32 mtu;
    __u32 flags;
    __u8 mac[6]; /* frames to another host's MAC (a promiscuous interface) are not ours */
    __u16 reserved;
};

/* Per-CPU counters of what the program did, by index. */
enum tern_fp_stat {
    TERN_FP_STAT_TO_PEER = 0,      /* ChannelData relayed to a peer */
    TERN_FP_STAT_TO_CLIENT,        /* peer datagram relayed to a client */
    TERN_FP_STAT_PASS_NO_ENTRY,    /* UDP to us with no entry (STUN, unbound channel, ...) */
    TERN_FP_STAT_PASS_NO_NEIGHBOR, /* destination not learned yet */
    TERN_FP_STAT_PASS_OTHER,       /* an entry matched but user space must decide (padding,
                                    * deferred checksum, too big, odd headers) */
    TERN_FP_STAT_DROP_BANDWIDTH,   /* over limits.allocation_bandwidth or user_bandwidth */
    TERN_FP_STAT_BYTES_TO_PEER,    /* payload bytes of TERN_FP_STAT_TO_PEER */
    TERN_FP_STAT_BYTES_TO_CLIENT,
    TERN_FP_STAT_COUNT
};

#endif
