// The io_uring candidate of the forwarder (built only when liburing is found). Every socket has
// one multishot recvmsg outstanding that takes its buffers from one provided buffer ring, so the
// kernel fills buffers from all sockets without a system call per socket; the sends of a turn
// are one SQE per message (GSO runs as in the epoll loop) and leave with the same io_uring_enter
// that waits for the next datagrams. A buffer returns to the ring when its send completes.
#include <liburing.h>
#include <netinet/udp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "forwarder_core.hpp"
#include "udp_batch.hpp"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace ternbench::forwarder_detail {

namespace {

constexpr unsigned ring_entries = 4096;  // SQ size; the CQ is four times that
constexpr unsigned buffer_count = 4096;  // provided buffers (a power of two)
constexpr unsigned buffer_size = 2048;   // recvmsg_out header + name + payload
constexpr unsigned buffer_group = 0;
constexpr std::size_t op_count = 4096;  // send messages in flight at once
constexpr std::uint64_t kind_listener = 1ULL << 56;
constexpr std::uint64_t kind_relay = 2ULL << 56;
constexpr std::uint64_t kind_send = 3ULL << 56;
constexpr std::uint64_t kind_mask = 0xFFULL << 56;

struct Pending {
    std::uint8_t* bytes;
    std::uint32_t size;
    std::uint16_t buffer;
    const sockaddr_in* to;
};

// One sendmsg SQE and what it holds until its completion.
struct SendOp {
    msghdr header{};
    std::array<iovec, gso_max_segments> iov{};
    std::array<std::uint16_t, gso_max_segments> buffers{};
    std::size_t count = 0;
    alignas(cmsghdr) std::array<std::uint8_t, CMSG_SPACE(sizeof(std::uint16_t))> control{};
};

class UringLoop {
public:
    explicit UringLoop(Core& core) : core_(core), ops_(op_count) {
        io_uring_params p{};
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        p.cq_entries = ring_entries * 4;
        int r = io_uring_queue_init_params(ring_entries, &ring_, &p);
        if (r == -EINVAL) {  // a kernel before 6.1: no deferred task work
            p = {};
            p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
            p.cq_entries = ring_entries * 4;
            r = io_uring_queue_init_params(ring_entries, &ring_, &p);
        }
        if (r < 0)
            throw std::runtime_error(std::string("io_uring_queue_init: ") + std::strerror(-r));
        setup_buffers();
        for (std::size_t i = 0; i < op_count; ++i) free_ops_.push_back(i);
        // One recvmsg template for every socket: a source address, no control messages.
        receive_header_.msg_namelen = sizeof(sockaddr_in);
        arm(core.listener(), kind_listener);
    }
    ~UringLoop() {
        io_uring_queue_exit(&ring_);
        if (buffer_ring_ != nullptr) ::munmap(buffer_ring_, ring_bytes());
    }
    UringLoop(const UringLoop&) = delete;
    UringLoop& operator=(const UringLoop&) = delete;

    int run() {
        __kernel_timespec timeout{0, 200'000'000};
        while (stopping == 0) {
            const unsigned sends = submit_sends();
            if (recycled_ != 0) {
                io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(recycled_));
                recycled_ = 0;
            }
            // One enter: submit this turn's sends and re-arms, then sleep until every send has
            // completed and at least one more completion (a datagram) is there. Spinning, the
            // enter only submits and runs the completions that are ready.
            io_uring_cqe* cqe = nullptr;
            const int r = core_.options().spin ? io_uring_submit_and_get_events(&ring_)
                                               : io_uring_submit_and_wait_timeout(
                                                     &ring_, &cqe, sends + 1, &timeout, nullptr);
            if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
                std::cerr << "forwarder: io_uring_enter: " << std::strerror(-r) << "\n";
                return 1;
            }
            unsigned head = 0;
            unsigned seen = 0;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                complete(*cqe);
                ++seen;
            }
            io_uring_cq_advance(&ring_, seen);
        }
        return 0;
    }

private:
    std::size_t ring_bytes() const { return buffer_count * sizeof(io_uring_buf); }

    void setup_buffers() {
        void* mapped = ::mmap(nullptr, ring_bytes(), PROT_READ | PROT_WRITE,
                              MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (mapped == MAP_FAILED) throw std::runtime_error("mmap of the buffer ring failed");
        buffer_ring_ = static_cast<io_uring_buf_ring*>(mapped);
        io_uring_buf_ring_init(buffer_ring_);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(buffer_ring_);
        reg.ring_entries = buffer_count;
        reg.bgid = buffer_group;
        if (const int r = io_uring_register_buf_ring(&ring_, &reg, 0); r != 0) {
            throw std::runtime_error(std::string("io_uring_register_buf_ring: ") +
                                     std::strerror(-r));
        }
        buffers_.resize(std::size_t{buffer_count} * buffer_size);
        for (unsigned b = 0; b < buffer_count; ++b) recycle(static_cast<std::uint16_t>(b));
        io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(recycled_));
        recycled_ = 0;
    }

    std::uint8_t* buffer(std::uint16_t b) { return buffers_.data() + std::size_t{b} * buffer_size; }

    void recycle(std::uint16_t b) {
        io_uring_buf_ring_add(buffer_ring_, buffer(b), buffer_size, b,
                              io_uring_buf_ring_mask(buffer_count), static_cast<int>(recycled_));
        ++recycled_;
    }

    io_uring_sqe* sqe() {
        io_uring_sqe* s = io_uring_get_sqe(&ring_);
        if (s == nullptr) {  // the SQ is full: hand it to the kernel and take a fresh one
            io_uring_submit(&ring_);
            s = io_uring_get_sqe(&ring_);
        }
        return s;
    }

    void arm(int fd, std::uint64_t tag) {
        io_uring_sqe* s = sqe();
        io_uring_prep_recvmsg_multishot(s, fd, &receive_header_, 0);
        s->flags |= IOSQE_BUFFER_SELECT;
        s->buf_group = buffer_group;
        io_uring_sqe_set_data64(s, tag);
    }

    void complete(const io_uring_cqe& cqe) {
        const std::uint64_t kind = cqe.user_data & kind_mask;
        const std::uint64_t value = cqe.user_data & ~kind_mask;
        if (kind == kind_send) {
            SendOp& op = ops_[value];
            for (std::size_t i = 0; i < op.count; ++i) recycle(op.buffers[i]);
            free_ops_.push_back(value);
            return;
        }
        const bool listener = kind == kind_listener;
        const int fd = listener ? core_.listener() : core_.clients()[value].relay_fd;
        if ((cqe.flags & IORING_CQE_F_MORE) == 0) arm(fd, cqe.user_data);  // ended (or ENOBUFS)
        if (cqe.res < 0 || (cqe.flags & IORING_CQE_F_BUFFER) == 0) return;
        const auto b = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buffer(b), cqe.res, &receive_header_);
        if (out == nullptr || (out->flags & MSG_TRUNC) != 0 || out->namelen < sizeof(sockaddr_in)) {
            recycle(b);
            return;
        }
        auto* payload = static_cast<std::uint8_t*>(io_uring_recvmsg_payload(out, &receive_header_));
        const auto size = static_cast<std::size_t>(
            io_uring_recvmsg_payload_length(out, cqe.res, &receive_header_));
        sockaddr_in source{};
        std::memcpy(&source, io_uring_recvmsg_name(out), sizeof source);
        if (listener) {
            from_client(b, payload, size, source);
        } else {
            from_peer(b, value, payload, size, source);
        }
    }

    // Client to peer: the payload after the 4-byte header leaves from the client's relay socket.
    void from_client(std::uint16_t b, std::uint8_t* bytes, std::size_t size,
                     const sockaddr_in& source) {
        const std::size_t length = channel_data_length(bytes, size);
        if (length == 0) {
            core_.handle_setup(bytes, size, source, [this](std::size_t index, int fd) {
                if (to_peers_.size() <= index) to_peers_.resize(index + 1);
                arm(fd, kind_relay | index);
            });
            recycle(b);
            return;
        }
        const std::int64_t c = core_.find(source);
        if (c < 0 || core_.clients()[std::size_t(c)].peer.sin_port == 0) {
            recycle(b);
            return;
        }
        const auto ci = static_cast<std::size_t>(c);
        if (to_peers_[ci].empty()) dirty_.push_back(ci);
        to_peers_[ci].push_back(
            {bytes + 4, static_cast<std::uint32_t>(length), b, &core_.clients()[ci].peer});
    }

    // Peer to client: the header goes into the 4 bytes before the payload (the tail of the
    // source address the kernel wrote there, already read), and it leaves from the listener.
    void from_peer(std::uint16_t b, std::size_t client, std::uint8_t* payload, std::size_t size,
                   const sockaddr_in& source) {
        const Client& c = core_.clients()[client];
        if (!same_address(source, c.peer)) {
            recycle(b);
            return;
        }
        write_header(payload - 4, static_cast<std::uint32_t>(size));
        to_clients_.push_back({payload - 4, static_cast<std::uint32_t>(size + 4), b, &c.address});
    }

    // Turns the queues into sendmsg SQEs; returns how many.
    unsigned submit_sends() {
        unsigned sends = 0;
        for (const std::size_t c : dirty_) {
            sends += queue_sends(core_.clients()[c].relay_fd, to_peers_[c]);
        }
        dirty_.clear();
        sends += queue_sends(core_.listener(), to_clients_);
        return sends;
    }

    unsigned queue_sends(int fd, std::vector<Pending>& queue) {
        unsigned sends = 0;
        const bool gso = core_.options().gso;
        for (std::size_t i = 0; i < queue.size();) {
            if (free_ops_.empty()) {
                // Every op is in flight: drop the rest, as a full socket would.
                for (; i < queue.size(); ++i) recycle(queue[i].buffer);
                break;
            }
            const std::size_t o = free_ops_.back();
            free_ops_.pop_back();
            SendOp& op = ops_[o];
            const Pending& first = queue[i];
            std::size_t run = 1;
            while (gso && i + run < queue.size() && run < gso_max_segments &&
                   (run + 1) * first.size <= gso_max_bytes && queue[i + run].size == first.size &&
                   same_address(*queue[i + run].to, *first.to)) {
                ++run;
            }
            op.count = run;
            for (std::size_t k = 0; k < run; ++k) {
                op.iov[k] = {queue[i + k].bytes, queue[i + k].size};
                op.buffers[k] = queue[i + k].buffer;
            }
            op.header = {};
            op.header.msg_name = const_cast<sockaddr_in*>(first.to);
            op.header.msg_namelen = sizeof(sockaddr_in);
            op.header.msg_iov = op.iov.data();
            op.header.msg_iovlen = run;
            if (run > 1) {
                op.header.msg_control = op.control.data();
                op.header.msg_controllen = op.control.size();
                cmsghdr* cm = CMSG_FIRSTHDR(&op.header);
                cm->cmsg_level = SOL_UDP;
                cm->cmsg_type = UDP_SEGMENT;
                cm->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
                const auto segment = static_cast<std::uint16_t>(first.size);
                std::memcpy(CMSG_DATA(cm), &segment, sizeof segment);
            }
            io_uring_sqe* s = sqe();
            io_uring_prep_sendmsg(s, fd, &op.header, MSG_DONTWAIT);
            io_uring_sqe_set_data64(s, kind_send | o);
            ++sends;
            i += run;
        }
        queue.clear();
        return sends;
    }

    Core& core_;
    io_uring ring_{};
    io_uring_buf_ring* buffer_ring_ = nullptr;
    std::vector<std::uint8_t> buffers_;
    unsigned recycled_ = 0;
    msghdr receive_header_{};
    std::vector<SendOp> ops_;
    std::vector<std::size_t> free_ops_;
    std::vector<Pending> to_clients_;
    std::vector<std::vector<Pending>> to_peers_;
    std::vector<std::size_t> dirty_;
};

}  // namespace

int run_uring(Core& core) {
    UringLoop loop(core);
    return loop.run();
}

}  // namespace ternbench::forwarder_detail
