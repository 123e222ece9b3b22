/* The kernel fast path (XDP): ChannelData over UDP relayed both ways for bound channels
 * (RFC 8656 §12.5, §12.6) without a trip through a socket. ternd owns the rules: it installs an
 * entry per bound channel whose permission is live and whose peer its policy permits, and takes
 * it away within one sweep when any of that ends. Anything the program is not certain about goes
 * on to user space unchanged (XDP_PASS), where the full rules apply. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "fast_path_maps.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Sizes are set by ternd before it loads the program (relay.kernel_fast_path_max_channels). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct tern_fp_channel_key);
    __type(value, struct tern_fp_channel_value);
} channels SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct tern_fp_peer_key);
    __type(value, struct tern_fp_peer_value);
} peers SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 131072);
    __type(key, struct tern_fp_neighbor_key);
    __type(value, struct tern_fp_neighbor_value);
} neighbors SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, struct tern_fp_iface_value);
} ifaces SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 131072);
    __type(key, __u32);
    __type(value, struct tern_fp_budget);
} budgets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TERN_FP_STAT_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define IP_DF 0x4000
#define RELAY_TTL 64 /* what a socket of ours would send with (Linux's default) */
#define CHANNEL_DATA_HEADER 4

static __always_inline int count(__u32 stat, int action) {
    __u64* n = bpf_map_lookup_elem(&stats, &stat);
    if (n) *n += 1;
    return action;
}

static __always_inline void count_bytes(__u32 stat, __u32 bytes) {
    __u64* n = bpf_map_lookup_elem(&stats, &stat);
    if (n) *n += bytes;
}

/* One's complement arithmetic over 16-bit words as they lie in memory (the sum is the same in
 * either byte order as long as every word is taken alike). */
static __always_inline __u32 csum_add(__u32 sum, __u16 word) { return sum + word; }
static __always_inline __u32 csum_sub(__u32 sum, __u16 word) { return sum + (__u16)~word; }
static __always_inline __u16 csum_fold(__u32 sum) {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)sum;
}
/* A memory-order word from two bytes at an even and an odd offset. */
static __always_inline __u16 word_of(__u8 even, __u8 odd) {
    union {
        __u8 b[2];
        __u16 w;
    } u = {.b = {even, odd}};
    return u.w;
}

static __always_inline __u32 csum_add_ip(__u32 sum, const __u8* ip16, int v6) {
    const __u16* w = (const __u16*)ip16;
    if (v6) {
#pragma unroll
        for (int i = 0; i < 8; i++) sum = csum_add(sum, w[i]);
    } else {
        sum = csum_add(sum, w[6]);
        sum = csum_add(sum, w[7]);
    }
    return sum;
}
static __always_inline __u32 csum_sub_ip(__u32 sum, const __u8* ip16, int v6) {
    const __u16* w = (const __u16*)ip16;
    if (v6) {
#pragma unroll
        for (int i = 0; i < 8; i++) sum = csum_sub(sum, w[i]);
    } else {
        sum = csum_sub(sum, w[6]);
        sum = csum_sub(sum, w[7]);
    }
    return sum;
}

/* Takes `bytes` from the bucket if it holds them; refills it first from the time since the last
 * refill (at most a second's worth, up to the burst). Races between CPUs cost at most a packet
 * or two of slack, never a lock. */
static __always_inline int take(struct tern_fp_bucket* b, __u32 bytes) {
    __u64 rate = b->bytes_per_second;
    if (rate == 0) return 1;
    __u64 now = bpf_ktime_get_ns();
    __u64 last = b->last_ns;
    if (now > last && __sync_val_compare_and_swap(&b->last_ns, last, now) == last) {
        __u64 elapsed = now - last;
        if (elapsed > 1000000000ull) elapsed = 1000000000ull;
        __s64 add = (__s64)(elapsed * rate / 1000000000ull);
        __s64 burst = (__s64)b->burst;
        __s64 tokens = __sync_fetch_and_add(&b->tokens, add) + add;
        if (tokens > burst) __sync_fetch_and_add(&b->tokens, burst - tokens);
    }
    __s64 before = __sync_fetch_and_add(&b->tokens, -(__s64)bytes);
    if (before >= (__s64)bytes) return 1;
    __sync_fetch_and_add(&b->tokens, (__s64)bytes);
    return 0;
}

/* Both budgets of a route allow `bytes` in this direction (to_peer: 1, to_client: 0). A budget
 * that is gone (an allocation ending) sends the datagram to user space. */
static __always_inline int within_budgets(__u32 allocation, __u32 user, int to_peer, __u32 bytes) {
    struct tern_fp_budget* a = 0;
    struct tern_fp_budget* u = 0;
    if (allocation != TERN_FP_NO_BUDGET) {
        a = bpf_map_lookup_elem(&budgets, &allocation);
        if (!a) return -1;
    }
    if (user != TERN_FP_NO_BUDGET) {
        u = bpf_map_lookup_elem(&budgets, &user);
        if (!u) return -1;
    }
    if (a && !take(to_peer ? &a->to_peer : &a->to_client, bytes)) return 0;
    if (u && !take(to_peer ? &u->to_peer : &u->to_client, bytes)) {
        /* The allocation's share goes back: this datagram is not sent. */
        if (a) __sync_fetch_and_add(to_peer ? &a->to_peer.tokens : &a->to_client.tokens, (__s64)bytes);
        return 0;
    }
    return 1;
}

/* The parsed outer headers of a UDP datagram, addresses widened to 16 bytes. */
struct datagram {
    __u8 src[16];
    __u8 dst[16];
    __be16 sport;
    __be16 dport;
    __u16 udp_len;   /* UDP header + payload, from the UDP header (checked against IP's) */
    __u16 l3_len;    /* 20 or 40 */
    __u16 frame_len; /* Ethernet + IP total length (anything beyond is link padding) */
    __u16 family;
    __be16 check;
    __be16 ip_id;
    __u8 smac[6];
    __u8 dmac[6];
};

static __always_inline void widen_v4(__u8* out, __be32 addr) {
    __builtin_memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    __builtin_memcpy(out + 12, &addr, 4);
}

/* False for anything that is not a plain UDP datagram in one unfragmented IP packet. */
static __always_inline int parse(struct xdp_md* ctx, struct datagram* d) {
    void* data = (void*)(long)ctx->data;
    void* end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > end) return 0;
    __builtin_memcpy(d->smac, eth->h_source, 6);
    __builtin_memcpy(d->dmac, eth->h_dest, 6);
    struct udphdr* udp;
    __u16 ip_payload;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr* ip = (void*)(eth + 1);
        if ((void*)(ip + 1) > end) return 0;
        /* Options and fragments go to user space (and the kernel's reassembly). */
        if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP) return 0;
        if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) return 0;
        /* A header the kernel would drop (ip_rcv: bad checksum) goes to it to be dropped: the
         * relayed frame's header is written anew, so a corrupt one would leave as a good one. */
        const __u16* w = (const __u16*)ip;
        __u32 sum = 0;
#pragma unroll
        for (int i = 0; i < 10; i++) sum = csum_add(sum, w[i]);
        if (csum_fold(sum) != 0xffff) return 0;
        __u16 total = bpf_ntohs(ip->tot_len);
        if (total < sizeof(*ip) + sizeof(struct udphdr)) return 0;
        ip_payload = total - sizeof(*ip);
        widen_v4(d->src, ip->saddr);
        widen_v4(d->dst, ip->daddr);
        d->family = TERN_FP_FAMILY_V4;
        d->l3_len = sizeof(*ip);
        d->ip_id = ip->id;
        udp = (void*)(ip + 1);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = (void*)(eth + 1);
        if ((void*)(ip6 + 1) > end) return 0;
        /* Extension headers (fragments among them) go to user space. */
        if (ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP) return 0;
        ip_payload = bpf_ntohs(ip6->payload_len);
        __builtin_memcpy(d->src, &ip6->saddr, 16);
        __builtin_memcpy(d->dst, &ip6->daddr, 16);
        d->family = TERN_FP_FAMILY_V6;
        d->l3_len = sizeof(*ip6);
        d->ip_id = 0;
        udp = (void*)(ip6 + 1);
    } else {
        return 0;
    }
    if ((void*)(udp + 1) > end) return 0;
    d->udp_len = bpf_ntohs(udp->len);
    if (d->udp_len < sizeof(*udp) || d->udp_len != ip_payload) return 0;
    d->frame_len = sizeof(struct ethhdr) + d->l3_len + d->udp_len;
    if (data + (d->frame_len & 0x3fff) > end || d->frame_len > 0x3fff) return 0; /* truncated */
    d->sport = udp->source;
    d->dport = udp->dest;
    d->check = udp->check;
    /* IPv6 requires a checksum (RFC 8200 §8.1): the kernel drops a zero, so does user space. */
    if (d->family == TERN_FP_FAMILY_V6 && d->check == 0) return 0;
    return 1;
}

/* The pseudo-header part of a UDP checksum, folded: what a sender that defers the checksum to
 * the NIC (CHECKSUM_PARTIAL: loopback, veth with tx offload) leaves in the field. Such a datagram
 * has no real checksum yet, so an incremental update would produce garbage: it goes to user
 * space, except IPv4 on loopback, which leaves with no checksum (0, RFC 768): nothing on
 * loopback can corrupt it. A real checksum that happens to equal this (1 in 65536) only costs
 * that datagram the trip through user space. */
static __always_inline int looks_deferred(const struct datagram* d) {
    int v6 = d->family == TERN_FP_FAMILY_V6;
    __u32 sum = 0;
    sum = csum_add_ip(sum, d->src, v6);
    sum = csum_add_ip(sum, d->dst, v6);
    sum = csum_add(sum, bpf_htons(IPPROTO_UDP));
    sum = csum_add(sum, bpf_htons(d->udp_len));
    return csum_fold(sum) == d->check;
}

static __always_inline int same_bytes(const __u8* a, const __u8* b, int n) {
#pragma unroll
    for (int i = 0; i < 16; i++) {
        if (i < n && a[i] != b[i]) return 0;
    }
    return 1;
}

/* The path back to a sender, as its matched datagram came in. */
static __always_inline void learn(struct xdp_md* ctx, const struct datagram* d) {
    /* Only a unicast frame shows the way: a broadcast or multicast destination is not our MAC
     * (it would become the source MAC of what goes back), a multicast source is no host. */
    if ((d->smac[0] | d->dmac[0]) & 1) return;
    struct tern_fp_neighbor_key key = {.family = d->family};
    __builtin_memcpy(key.ip, d->src, 16);
    struct tern_fp_neighbor_value* known = bpf_map_lookup_elem(&neighbors, &key);
    if (known && known->ifindex == ctx->ingress_ifindex && same_bytes(known->remote_mac, d->smac, 6)
        && same_bytes(known->local_mac, d->dmac, 6)) {
        return;
    }
    struct tern_fp_neighbor_value value = {.ifindex = ctx->ingress_ifindex};
    __builtin_memcpy(value.remote_mac, d->smac, 6);
    __builtin_memcpy(value.local_mac, d->dmac, 6);
    bpf_map_update_elem(&neighbors, &key, &value, BPF_ANY);
}

static __always_inline struct tern_fp_neighbor_value* neighbor_of(const __u8* ip, __u16 family) {
    struct tern_fp_neighbor_key key = {.family = family};
    __builtin_memcpy(key.ip, ip, 16);
    return bpf_map_lookup_elem(&neighbors, &key);
}

/* Writes Ethernet, IP and UDP headers for a datagram of `udp_len` bytes at the frame's start;
 * the caller has sized the frame. Returns 0 when the frame is too short (cannot happen after a
 * successful adjust, but the verifier wants the check). */
static __always_inline int write_headers(struct xdp_md* ctx, const struct tern_fp_neighbor_value* nb,
                                         __u16 family, __be16 ip_id, const __u8* src,
                                         const __u8* dst, __be16 sport, __be16 dport,
                                         __u16 udp_len, __be16 check, void** payload) {
    void* data = (void*)(long)ctx->data;
    void* end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > end) return 0;
    __builtin_memcpy(eth->h_dest, nb->remote_mac, 6);
    __builtin_memcpy(eth->h_source, nb->local_mac, 6);
    struct udphdr* udp;
    if (family == TERN_FP_FAMILY_V4) {
        eth->h_proto = bpf_htons(ETH_P_IP);
        struct iphdr* ip = (void*)(eth + 1);
        if ((void*)(ip + 1) > end) return 0;
        ip->version = 4;
        ip->ihl = 5;
        ip->tos = 0;
        ip->tot_len = bpf_htons(sizeof(*ip) + udp_len);
        ip->id = ip_id;
        ip->frag_off = bpf_htons(IP_DF); /* as our sockets send: path MTU discovery on */
        ip->ttl = RELAY_TTL;
        ip->protocol = IPPROTO_UDP;
        ip->check = 0;
        __builtin_memcpy(&ip->saddr, src + 12, 4);
        __builtin_memcpy(&ip->daddr, dst + 12, 4);
        const __u16* w = (const __u16*)ip;
        __u32 sum = 0;
#pragma unroll
        for (int i = 0; i < 10; i++) sum = csum_add(sum, w[i]);
        ip->check = (__u16)~csum_fold(sum);
        udp = (void*)(ip + 1);
    } else {
        eth->h_proto = bpf_htons(ETH_P_IPV6);
        struct ipv6hdr* ip6 = (void*)(eth + 1);
        if ((void*)(ip6 + 1) > end) return 0;
        *(__be32*)ip6 = bpf_htonl(0x60000000); /* version 6, traffic class 0, no flow label */
        ip6->payload_len = bpf_htons(udp_len);
        ip6->nexthdr = IPPROTO_UDP;
        ip6->hop_limit = RELAY_TTL;
        __builtin_memcpy(&ip6->saddr, src, 16);
        __builtin_memcpy(&ip6->daddr, dst, 16);
        udp = (void*)(ip6 + 1);
    }
    if ((void*)(udp + 1) > end) return 0;
    udp->source = sport;
    udp->dest = dport;
    udp->len = bpf_htons(udp_len);
    udp->check = check;
    *payload = udp + 1;
    return 1;
}

static __always_inline int send(struct xdp_md* ctx, const struct tern_fp_neighbor_value* nb) {
    if (nb->ifindex == ctx->ingress_ifindex) return XDP_TX;
    return bpf_redirect(nb->ifindex, 0);
}

/* The new UDP checksum after the changes the caller summed into `delta` (additions and
 * subtractions of words); 0 stays 0 (IPv4 without a checksum), a computed 0 is sent as 0xffff. */
static __always_inline __be16 updated_check(__be16 old, __u32 delta) {
    if (old == 0) return 0;
    __u32 sum = (__u16)~old;
    sum += delta;
    __u16 folded = csum_fold(sum);
    __u16 check = (__u16)~folded;
    return check == 0 ? 0xffff : check;
}

/* §12.5, client to peer: [eth][ip][udp][channel][length][payload][padding] becomes
 * [eth][ip][udp][payload], from the relayed address to the peer. */
static __always_inline int to_peer(struct xdp_md* ctx, struct datagram* d, __u16 channel,
                                   __u16 length, struct tern_fp_channel_value* entry) {
    int v6 = d->family == TERN_FP_FAMILY_V6;
    __u16 payload_len = d->udp_len - sizeof(struct udphdr) - CHANNEL_DATA_HEADER;
    if (length > payload_len) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS); /* malformed */
    __u16 pad = payload_len - length;
    /* Over UDP padding is optional (§12.5); more than 3 bytes is not padding. */
    if (pad > 3) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    __u32 in = ctx->ingress_ifindex;
    struct tern_fp_iface_value* iface = bpf_map_lookup_elem(&ifaces, &in);
    if (!iface || !same_bytes(iface->mac, d->dmac, 6)) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    int deferred = d->check != 0 && looks_deferred(d);
    if (deferred && (v6 || !(iface->flags & TERN_FP_IFACE_LOOPBACK)))
        return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    learn(ctx, d);
    struct tern_fp_neighbor_value* nb = neighbor_of(entry->peer_ip, d->family);
    if (!nb) return count(TERN_FP_STAT_PASS_NO_NEIGHBOR, XDP_PASS);
    __u32 out = nb->ifindex;
    struct tern_fp_iface_value* out_iface = bpf_map_lookup_elem(&ifaces, &out);
    if (!out_iface || d->l3_len + sizeof(struct udphdr) + length > out_iface->mtu)
        return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);

    /* The padding bytes leave the checksum; read them before the frame changes. */
    __u32 delta = 0;
    void* data = (void*)(long)ctx->data;
    void* end = (void*)(long)ctx->data_end;
    __u32 pad_at = sizeof(struct ethhdr) + d->l3_len + sizeof(struct udphdr) + CHANNEL_DATA_HEADER
                   + length; /* within the frame: parse() checked frame_len */
#pragma unroll
    for (int i = 0; i < 3; i++) {
        if (i < pad) {
            __u32 at = (pad_at + i) & 0x1fff; /* bounded for the verifier: XDP frames are smaller */
            __u8* p = data + at;
            if ((void*)(p + 1) > end) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
            /* Offsets from the UDP header: the payload starts even, so parity follows length. */
            __u16 w = ((length + i) & 1) ? word_of(0, *p) : word_of(*p, 0);
            delta = csum_sub(delta, w);
        }
    }
    __u16 new_udp_len = sizeof(struct udphdr) + length;
    __be16 old_len = bpf_htons(d->udp_len);
    __be16 new_len = bpf_htons(new_udp_len);
    delta = csum_sub_ip(delta, d->src, v6);
    delta = csum_sub_ip(delta, d->dst, v6);
    delta = csum_add_ip(delta, entry->relay_ip, v6);
    delta = csum_add_ip(delta, entry->peer_ip, v6);
    delta = csum_sub(delta, d->sport);
    delta = csum_sub(delta, d->dport);
    delta = csum_add(delta, entry->relay_port);
    delta = csum_add(delta, entry->peer_port);
    delta = csum_sub(delta, old_len); /* the length is in the pseudo header ... */
    delta = csum_sub(delta, old_len); /* ... and in the UDP header */
    delta = csum_add(delta, new_len);
    delta = csum_add(delta, new_len);
    delta = csum_sub(delta, bpf_htons(channel));
    delta = csum_sub(delta, bpf_htons(length));
    __be16 check = deferred ? 0 : updated_check(d->check, delta);

    /* Over a cap the datagram is dropped, as user space drops it (§ limits in ternd's docs). */
    int budget = within_budgets(entry->allocation_budget, entry->user_budget, 1, length);
    if (budget < 0) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    if (budget == 0) return count(TERN_FP_STAT_DROP_BANDWIDTH, XDP_DROP);

    /* Drop the link padding and the ChannelData padding at the tail, the header's 4 bytes at
     * the front (the headers are written anew 4 bytes later). */
    int tail = (int)bpf_xdp_get_buff_len(ctx) - (int)d->frame_len + (int)pad;
    if (tail > 0 && bpf_xdp_adjust_tail(ctx, -tail)) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    if (bpf_xdp_adjust_head(ctx, CHANNEL_DATA_HEADER)) return count(TERN_FP_STAT_PASS_OTHER, XDP_DROP);
    void* payload;
    if (!write_headers(ctx, nb, d->family, d->ip_id, entry->relay_ip, entry->peer_ip,
                       entry->relay_port, entry->peer_port, new_udp_len, check, &payload))
        return count(TERN_FP_STAT_PASS_OTHER, XDP_DROP);
    __sync_fetch_and_add(&entry->packets, 1);
    __sync_fetch_and_add(&entry->bytes, length);
    count_bytes(TERN_FP_STAT_BYTES_TO_PEER, length);
    return count(TERN_FP_STAT_TO_PEER, send(ctx, nb));
}

/* §12.6, peer to client: [eth][ip][udp][payload] becomes [eth][ip][udp][channel][length][payload]
 * from the listener address the client reached to the client. */
static __always_inline int to_client(struct xdp_md* ctx, struct datagram* d,
                                     struct tern_fp_peer_value* entry) {
    int v6 = d->family == TERN_FP_FAMILY_V6;
    __u32 in = ctx->ingress_ifindex;
    struct tern_fp_iface_value* iface = bpf_map_lookup_elem(&ifaces, &in);
    if (!iface || !same_bytes(iface->mac, d->dmac, 6)) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    int deferred = d->check != 0 && looks_deferred(d);
    if (deferred && (v6 || !(iface->flags & TERN_FP_IFACE_LOOPBACK)))
        return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    learn(ctx, d);
    struct tern_fp_neighbor_value* nb = neighbor_of(entry->client_ip, d->family);
    if (!nb) return count(TERN_FP_STAT_PASS_NO_NEIGHBOR, XDP_PASS);
    __u32 out = nb->ifindex;
    struct tern_fp_iface_value* out_iface = bpf_map_lookup_elem(&ifaces, &out);
    if (!out_iface) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    __u16 length = d->udp_len - sizeof(struct udphdr);
    __u32 new_udp_len = (__u32)d->udp_len + CHANNEL_DATA_HEADER;
    /* Over the MTU it would need fragments: user space sends it (the kernel fragments). */
    if (d->l3_len + new_udp_len > out_iface->mtu || new_udp_len > 0xffff)
        return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);

    __be16 old_len = bpf_htons(d->udp_len);
    __be16 new_len = bpf_htons((__u16)new_udp_len);
    __u32 delta = 0;
    delta = csum_sub_ip(delta, d->src, v6);
    delta = csum_sub_ip(delta, d->dst, v6);
    delta = csum_add_ip(delta, entry->server_ip, v6);
    delta = csum_add_ip(delta, entry->client_ip, v6);
    delta = csum_sub(delta, d->sport);
    delta = csum_sub(delta, d->dport);
    delta = csum_add(delta, entry->server_port);
    delta = csum_add(delta, entry->client_port);
    delta = csum_sub(delta, old_len);
    delta = csum_sub(delta, old_len);
    delta = csum_add(delta, new_len);
    delta = csum_add(delta, new_len);
    delta = csum_add(delta, entry->channel);
    delta = csum_add(delta, bpf_htons(length));
    __be16 check = deferred ? 0 : updated_check(d->check, delta);

    int budget = within_budgets(entry->allocation_budget, entry->user_budget, 0, length);
    if (budget < 0) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    if (budget == 0) return count(TERN_FP_STAT_DROP_BANDWIDTH, XDP_DROP);

    int tail = (int)bpf_xdp_get_buff_len(ctx) - (int)d->frame_len;
    if (tail > 0 && bpf_xdp_adjust_tail(ctx, -tail)) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    if (bpf_xdp_adjust_head(ctx, -CHANNEL_DATA_HEADER)) return count(TERN_FP_STAT_PASS_OTHER, XDP_PASS);
    void* payload;
    if (!write_headers(ctx, nb, d->family, d->ip_id, entry->server_ip, entry->client_ip,
                       entry->server_port, entry->client_port, (__u16)new_udp_len, check, &payload))
        return count(TERN_FP_STAT_PASS_OTHER, XDP_DROP);
    __be16* header = payload;
    if ((void*)(header + 2) > (void*)(long)ctx->data_end)
        return count(TERN_FP_STAT_PASS_OTHER, XDP_DROP);
    header[0] = entry->channel;
    header[1] = bpf_htons(length);
    __sync_fetch_and_add(&entry->packets, 1);
    __sync_fetch_and_add(&entry->bytes, length);
    count_bytes(TERN_FP_STAT_BYTES_TO_CLIENT, length);
    return count(TERN_FP_STAT_TO_CLIENT, send(ctx, nb));
}

SEC("xdp")
int tern_fast_path(struct xdp_md* ctx) {
    struct datagram d;
    if (!parse(ctx, &d)) return XDP_PASS; /* not ours to count: any non-UDP traffic */

    /* ChannelData starts with 0b01 (§12): a channel number 0x4000-0x7FFF. */
    void* data = (void*)(long)ctx->data;
    void* end = (void*)(long)ctx->data_end;
    __u32 payload_at = sizeof(struct ethhdr) + d.l3_len + sizeof(struct udphdr);
    if (d.udp_len >= sizeof(struct udphdr) + CHANNEL_DATA_HEADER) {
        __be16* header = data + (payload_at & 0xff);
        if ((void*)(header + 2) > end) return XDP_PASS;
        __u16 channel = bpf_ntohs(header[0]);
        if ((channel & 0xC000) == 0x4000) {
            struct tern_fp_channel_key key = {.client_port = d.sport,
                                              .server_port = d.dport,
                                              .channel = header[0],
                                              .family = d.family};
            __builtin_memcpy(key.client_ip, d.src, 16);
            __builtin_memcpy(key.server_ip, d.dst, 16);
            struct tern_fp_channel_value* entry = bpf_map_lookup_elem(&channels, &key);
            if (entry) return to_peer(ctx, &d, channel, bpf_ntohs(header[1]), entry);
        }
    }
    struct tern_fp_peer_key key = {.relay_port = d.dport, .peer_port = d.sport, .family = d.family};
    __builtin_memcpy(key.relay_ip, d.dst, 16);
    __builtin_memcpy(key.peer_ip, d.src, 16);
    struct tern_fp_peer_value* entry = bpf_map_lookup_elem(&peers, &key);
    if (entry) return to_client(ctx, &d, entry);
    return count(TERN_FP_STAT_PASS_NO_ENTRY, XDP_PASS);
}
