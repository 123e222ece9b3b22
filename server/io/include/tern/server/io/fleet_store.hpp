// The fleet's shared store: one Redis (hiredis 0.14, synchronous) driven from two threads of
// its own. The command thread runs queued jobs in order (quota leases, revocations, snapshots,
// usage records) and a once-a-second heartbeat (this node's registry entry, lease renewals, the
// registry read); the subscriber thread listens on the control channel. Every method may be
// called from any thread and returns at once; nothing here is on the relay path, and a slow or
// dead Redis only delays these jobs. Keys and lifetimes: docs/deployment.md#a-fleet.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tern/config/config.hpp"
#include "tern/server/request/fleet_directory.hpp"

struct redisContext;
struct redisReply;

namespace tern::server {

// Tallies for /metrics; written by the store and the workers' gates, read by the snapshot.
struct FleetCounters {
    std::atomic<std::uint64_t> store_failures{0};  // episodes of an unreachable store
    std::atomic<std::uint64_t> granted{0};
    std::atomic<std::uint64_t> quota_full{0};
    std::atomic<std::uint64_t> timeout{0};     // no answer within fleet.allocate_wait_ms
    std::atomic<std::uint64_t> store_down{0};  // decided without the store (down or failed)
    std::atomic<std::uint64_t> redirects{0};
};

class FleetStore {
public:
    enum class LeaseAnswer : std::uint8_t { granted, quota_full, failed };
    // P"revocations": a user's last decision, a revocation (until > 0) or a lift (until 0),
    // with when it was made; the later decision wins where nodes disagree.
    struct Revocation {
        std::string user;
        std::int64_t until = 0;    // unix seconds; 0 = lifted
        std::int64_t decided = 0;  // unix milliseconds; 0 = unknown (older than any)
    };
    using Revocations = std::vector<Revocation>;
    // node id -> its session snapshot (fleet_messages.hpp lines)
    using Snapshots = std::vector<std::pair<std::string, std::string>>;

    explicit FleetStore(const config::Fleet& fleet);
    ~FleetStore();
    FleetStore(const FleetStore&) = delete;
    FleetStore& operator=(const FleetStore&) = delete;

    // Before start(). `self` is asked once a second (on the store's thread) for this node's
    // registry entry; `control` gets each control message (on the subscriber thread);
    // `revocations` gets the fleet's revocations after each connect (on the store's thread).
    void on_heartbeat(std::function<FleetNode()> self) { self_ = std::move(self); }
    void on_control(std::function<void(std::string)> control) { control_ = std::move(control); }
    // `reconnected`: after the command connection (re)connected, when this node may have
    // revocations of its own to send; else after the subscriber (re)subscribed.
    void on_revocations(std::function<void(Revocations, bool reconnected)> r) {
        revocations_ = std::move(r);
    }

    void start();
    void stop();  // joins; queued jobs are dropped

    bool up() const noexcept { return up_.load(std::memory_order_relaxed); }
    // A lease went unanswered for fleet.allocate_wait_ms: later Allocates stop waiting for the
    // store until its thread gets an answer again.
    void note_slow() noexcept { up_.store(false, std::memory_order_relaxed); }
    const std::string& node_id() const noexcept { return fleet_.node_id; }
    const config::Fleet& settings() const noexcept { return fleet_; }
    FleetCounters& counters() noexcept { return counters_; }
    // The registry as last read (null before the first read); takes a mutex: Allocates only.
    std::shared_ptr<const FleetDirectory> directory() const;
    // This node's allocations at the last heartbeat.
    std::uint64_t own_allocations() const noexcept {
        return own_allocations_.load(std::memory_order_relaxed);
    }

    // A lease of `username`'s fleet quota (`limit` in all) named `member`; `done` runs on the
    // store's thread.
    void request_lease(const std::string& username, std::string member, std::uint32_t limit,
                       std::function<void(LeaseAnswer)> done);
    // A held lease: renewed until dropped, registered again whenever the store comes back;
    // `registered` when request_lease granted it (else it is written now).
    void keep_lease(const std::string& username, std::string member, bool registered);
    void drop_lease(const std::string& username, std::string member);

    void publish(std::string message);
    // `until` 0 records a lift (kept so a node cut off meanwhile learns it).
    void put_revocation(std::string user, std::int64_t until, std::int64_t decided);
    void put_sessions(std::string snapshot);
    // Every node's snapshot; nullopt when the store did not answer.
    void read_sessions(std::function<void(std::optional<Snapshots>)> done);
    void append_usage(const FieldList& fields);

private:
    // One command; `done` (may be empty) gets its reply, or null when the store failed.
    struct Job {
        std::vector<std::string> command;
        std::function<void(const redisReply*)> done;
    };
    // A Lua script, run by its SHA-1 (EVALSHA) and loaded at every connect.
    struct Script {
        explicit Script(std::string source);
        std::string text;
        std::string sha;
    };
    void enqueue(Job job);
    // Writes the jobs' commands in one go and hands each its reply; false when the connection
    // failed (the jobs left are told so).
    bool run_pipelined(redisContext* c, std::deque<Job>& jobs);
    bool load_scripts(redisContext* c);
    void command_loop();
    void subscriber_loop();
    redisContext* connect(bool subscriber, std::string& error) const;
    bool heartbeat(redisContext* c);
    bool renew_leases(redisContext* c, const std::map<std::string, std::string>& leases);
    bool load_revocations(redisContext* c);
    void reload_revocations();  // a queued HGETALL, for the subscriber
    void went_down(const std::string& why);
    void came_up(std::size_t leases);
    bool wait_backoff(std::chrono::milliseconds& backoff);  // false: stopping
    std::string key(std::string_view suffix) const {
        return fleet_.key_prefix + std::string(suffix);
    }

    config::Fleet fleet_;
    const Script acquire_;
    const Script renew_;
    const Script heartbeat_;
    const Script sessions_;
    bool scripts_lost_ = false;  // a NOSCRIPT answer: load them again (command thread only)
    std::function<FleetNode()> self_;
    std::function<void(std::string)> control_;
    std::function<void(Revocations, bool)> revocations_;
    FleetCounters counters_;
    std::atomic<bool> up_{false};
    std::atomic<bool> refusal_logged_{false};  // one line per run of refused lease requests
    std::atomic<std::uint64_t> own_allocations_{0};

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> queue_;
    std::map<std::string, std::string> leases_;  // member -> username, the leases to keep
    std::shared_ptr<const FleetDirectory> directory_;
    bool stopping_ = false;
    bool finished_ = false;        // the threads have ended: jobs are dropped
    bool episode_logged_ = false;  // one log line per unreachable episode
    std::chrono::steady_clock::time_point down_since_{};
    int subscriber_fd_ = -1;
    std::thread commands_;
    std::thread subscriber_;
};

}  // namespace tern::server
